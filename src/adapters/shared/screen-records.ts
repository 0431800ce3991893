import type { OutgoingRecord } from '../../core/envelope.ts';
import type { ZerolossError } from '../../core/errors.ts';
import type { PublishOutcome } from '../../ports/transport.ts';

/** Topic and key of a record: what a failure holds back. */
export function keySlot(record: OutgoingRecord): string {
  return `${record?.topic}\u0000${record?.key}`;
}

/**
 * Walks a publish call's records in order: a record that fails `check` gets its error (attempted), and
 * every later record of its topic and key is failed with the same error unattempted, so a key's order
 * never has a hole in it; the rest go to `accept`. `failed` maps each held-back key slot to its error,
 * for a transport that goes on holding keys back while it sends.
 */
export function screenRecords(
  records: OutgoingRecord[],
  check: (record: OutgoingRecord) => ZerolossError | undefined,
  accept: (record: OutgoingRecord, index: number, slot: string) => void,
): { outcomes: Array<PublishOutcome | undefined>; failed: Map<string, ZerolossError> } {
  const outcomes: Array<PublishOutcome | undefined> = new Array(records.length).fill(undefined);
  const failed = new Map<string, ZerolossError>();
  records.forEach((record, index) => {
    const slot = keySlot(record);
    const held = failed.get(slot);
    if (held) {
      outcomes[index] = { ok: false, error: held, attempted: false };
      return;
    }
    const problem = check(record);
    if (problem) {
      failed.set(slot, problem);
      outcomes[index] = { ok: false, error: problem, attempted: true };
      return;
    }
    accept(record, index, slot);
  });
  return { outcomes, failed };
}
