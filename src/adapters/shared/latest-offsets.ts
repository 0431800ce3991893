import { ZerolossError } from '../../core/errors.ts';
import { partitionSlot } from './partition-slot.ts';

export interface CommitOffset {
  topic: string;
  partition: number;
  offset: bigint;
}

/**
 * The offsets of one `commit` call, checked before anything is written (a negative or non-bigint
 * offset is ZL_INVALID_OFFSET and nothing is committed), one per partition: the last given wins.
 */
export function latestOffsets(offsets: CommitOffset[]): Map<string, CommitOffset> {
  const latest = new Map<string, CommitOffset>();
  for (const o of offsets) {
    if (typeof o?.offset !== 'bigint' || o.offset < 0n) {
      throw new ZerolossError('ZL_INVALID_OFFSET', `commit offset for ${o?.topic}/${o?.partition} must be a non-negative bigint`);
    }
    latest.set(partitionSlot(o), o);
  }
  return latest;
}

/** The partitions a commit could not write because this member no longer owns them; the others were written. */
export function commitFencedError(
  fenced: Array<{ topic: string; partition: number }>,
  details: Record<string, unknown> = { fenced },
): ZerolossError {
  return new ZerolossError('ZL_COMMIT_FENCED', `not committed, this member no longer owns: ${listPartitions(fenced)}`, { details });
}

export function listPartitions(partitions: Array<{ topic: string; partition: number }>): string {
  return partitions.map((p) => `${p.topic}/${p.partition}`).join(', ');
}
