import { ZerolossError } from '../core/errors.ts';
import type { PublishOutcome } from '../ports/transport.ts';

/**
 * A publisher's outcomes, one per record in order, as the Publisher port promises, or, when it returned
 * another number of them, a retryable failure for every record: outcomes matched by index would then mark
 * rows sent that the broker may never have taken (a list shifted by one dropped entry). A resend at worst.
 */
export function trustedOutcomes(records: number, outcomes: PublishOutcome[]): PublishOutcome[] {
  if (outcomes.length === records) return outcomes;
  const error = new ZerolossError(
    'ZL_SEND_FAILED',
    `the publisher returned ${outcomes.length} outcomes for ${records} records: none of them can be trusted`,
    { retryable: true },
  );
  return Array.from({ length: records }, () => ({ ok: false as const, error, attempted: true }));
}
