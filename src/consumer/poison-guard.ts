import { ZerolossError } from '../core/errors.ts';
import type { InboxStore, StartLog, StartRef } from '../ports/inbox-store.ts';
import { AbandonedError, type Middleware } from './delivery.ts';
import { type StoreRetryOptions, untilAvailable } from './store-retry.ts';

/**
 * Detects a message that kills the process whenever it is handled (poison, C7) by counting handler starts
 * durably per delivered record; a record is finished when its offset is committed (the marks are then
 * deleted), so a record that is started again was running when its process died or lost the partition.
 *
 * Such a suspect runs alone (no other handler of this process running), and only then is its start counted:
 * a healthy record that merely shared a process with the poison is never blamed for the crash. Once a
 * suspect has been started `maxStarts` times without finishing, it is dead-lettered without running again,
 * and the records behind it keep flowing.
 */
export function poisonGuardMiddleware(
  starts: StartLog,
  inbox: InboxStore,
  options: { maxStarts: number; retry: StoreRetryOptions },
): Middleware {
  return async (d, next) => {
    const ref: StartRef = {
      groupId: d.groupId,
      topic: d.record.topic,
      partition: d.record.partition,
      offset: d.record.offset,
      messageId: d.envelope?.id,
    };
    const first = await untilAvailable(d, 'recording a handler start', options.retry, () => starts.firstStart(ref));
    if (first) {
      await guarded(starts, ref, next);
      return;
    }
    // A redelivery whose effect did commit (the crash came after it) needs no isolation.
    const applied = await untilAvailable(d, 'checking the inbox', options.retry, () =>
      inbox.contains(d.groupId, d.idempotencyKey as string),
    );
    if (applied) {
      d.outcome = 'duplicate';
      d.duplicateVia = 'inbox';
      return;
    }
    await d.lane.exclusive(async () => {
      if (d.signal.aborted) throw new AbandonedError();
      const started = await untilAvailable(d, 'recording a handler start', options.retry, () => starts.countStart(ref));
      if (started > options.maxStarts) {
        throw new ZerolossError(
          'ZL_POISON_MESSAGE',
          `started ${started - 1} times without finishing (limit ${options.maxStarts}): it crashes or hangs the consumer`,
          { details: { started: started - 1 } },
        );
      }
      await guarded(starts, ref, next);
    });
  };
}

/** Runs the rest; a start that ends by abandonment (not a crash) is taken back so it is not held against the record. */
async function guarded(starts: StartLog, ref: StartRef, next: () => Promise<void>): Promise<void> {
  try {
    await next();
  } catch (error) {
    if (error instanceof AbandonedError) await starts.release(ref).catch(() => {});
    throw error;
  }
}
