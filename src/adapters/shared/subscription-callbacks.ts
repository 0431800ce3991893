import { classifyError, ZerolossError } from '../../core/errors.ts';
import type { SubscribeOptions } from '../../ports/transport.ts';

type TopicPartition = { topic: string; partition: number };

/**
 * Runs the user's onRevoke for partitions whose delivery has already stopped, and waits for it at most
 * `timeoutMs`: a hung onRevoke must not keep partitions from the rest of the group forever. A throw or a
 * timeout is reported through `onError`, never raised, so a rebalance always goes on.
 */
export async function runOnRevoke(
  onRevoke: SubscribeOptions['onRevoke'],
  partitions: TopicPartition[],
  timeoutMs: number,
  onError: (error: Error) => void,
): Promise<void> {
  if (!onRevoke || partitions.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      onError(new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', `onRevoke did not finish within ${timeoutMs} ms`));
      resolve();
    }, timeoutMs);
  });
  try {
    const list = partitions.map(({ topic, partition }) => ({ topic, partition }));
    await Promise.race([Promise.resolve().then(() => onRevoke(list)), timeout]);
  } catch (error) {
    onError(classifyError(error));
  } finally {
    clearTimeout(timer);
  }
}

/** Calls a user callback whose failure is the user's to see, not the subscription's to die of. */
export function callReporting(fn: () => void, onError: (error: Error) => void): void {
  try {
    fn();
  } catch (error) {
    onError(classifyError(error));
  }
}

/** onRecords threw: the batch was not taken; the subscription offers it again after backing off. */
export function onRecordsThrewError(where: string, error: unknown): ZerolossError {
  return new ZerolossError('ZL_UNKNOWN', `onRecords threw for ${where}: ${classifyError(error).message}`, {
    retryable: true,
    cause: error,
  });
}

/** A member could not join its group at start: retryable, the transport was not reachable or refused. */
export function joinFailedError(groupId: string, error: unknown): ZerolossError {
  return new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', `could not join group ${groupId}: ${classifyError(error).message}`, {
    retryable: true,
    cause: error,
  });
}
