import type { OutgoingRecord } from '../../src/core/envelope.ts';
import { ZerolossError } from '../../src/core/errors.ts';
import type { PublishOutcome, Publisher } from '../../src/ports/transport.ts';

/**
 * A publisher double for relay logic tests: records what it was given, fails on demand. The real broker
 * paths are covered by the Kafka tests; this one makes failure orders deterministic.
 */
export class ScriptedPublisher implements Publisher {
  readonly sent: OutgoingRecord[] = [];
  /** Return an error to fail that record (the batch stops for its key), undefined to accept it. */
  decide: (record: OutgoingRecord) => ZerolossError | undefined = () => undefined;

  async publish(records: OutgoingRecord[]): Promise<PublishOutcome[]> {
    const blocked = new Map<string, ZerolossError>();
    return records.map((record) => {
      const held = blocked.get(record.key);
      if (held) return { ok: false, error: held, attempted: false };
      const error = this.decide(record);
      if (error) {
        blocked.set(record.key, error);
        return { ok: false, error, attempted: true };
      }
      this.sent.push(record);
      return { ok: true, partition: 0, offset: BigInt(this.sent.length - 1) };
    });
  }

  async close(): Promise<void> {}
}

export const transient = () => new ZerolossError('ZL_SEND_FAILED', 'broker away', { retryable: true });
export const rejected = () => new ZerolossError('ZL_SEND_REJECTED', 'MESSAGE_TOO_LARGE', { retryable: false });
