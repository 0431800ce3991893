import { ZerolossError } from '../core/errors.ts';
import type { HeldRunStore, ResendStore } from '../ports/operations-store.ts';
import type { Publisher } from '../ports/transport.ts';
import type { OpsMetrics } from './ops-metrics.ts';
import { type ResendResult, resendEverywhere } from './resend.ts';

export interface ApproveResult {
  runId: string;
  /** How many ids the run held. */
  held: number;
  resend: ResendResult;
}

/**
 * A person approves a held reconciliation run (O8): exactly its held ids are re-published from the outbox
 * (and the state-column sources among `stores`) through the audited resend path. The run is taken from
 * 'held' to 'approved' before anything is sent, so it is re-published once: a second approval is refused
 * with ZL_RUN_NOT_HELD. If the broker took none of them (ZL_SEND_FAILED), the run is held again; ids that
 * failed one by one are in the result (and in the run's record) for `zeroloss resend --ids`.
 */
export async function approveHeldRun(
  deps: { store: HeldRunStore; stores: readonly ResendStore[]; publisher: Publisher; metrics?: OpsMetrics },
  runId: string,
  options: { actor: string; reason: string },
): Promise<ApproveResult> {
  if (!/^[1-9][0-9]{0,18}$/.test(runId)) throw new ZerolossError('ZL_INVALID_CONFIG', `run id must be a run number, got '${runId}'`);
  if (!options.reason.trim()) throw new ZerolossError('ZL_INVALID_CONFIG', 'approving a held run needs a reason');
  const ids = await deps.store.approveHeld(runId, options.actor, options.reason);
  if (!ids) throw await notHeld(deps.store, runId);
  let resend: ResendResult;
  try {
    resend = await resendEverywhere(
      { stores: deps.stores, publisher: deps.publisher, metrics: deps.metrics },
      { ids },
      {
        actor: options.actor,
        reason: `approved held reconcile run ${runId}: ${options.reason}`,
        metricReason: 'approved',
      },
    );
  } catch (error) {
    // A store failed outright: whatever went out is a duplicate consumers skip; held again, to retry.
    await deps.store.settleApproval(runId, undefined).catch(() => {});
    throw error;
  }
  if (resend.resent.length === 0 && resend.failed.length > 0) {
    // The broker took none of them (down, or refusing): nothing went out, so the run is held again.
    await deps.store.settleApproval(runId, undefined);
    throw new ZerolossError(
      'ZL_SEND_FAILED',
      `approving run ${runId}: no message was re-published: ${resend.failed[0]?.error}; the run is held again`,
      {
        retryable: true,
        details: { runId, failed: resend.failed.length },
      },
    );
  }
  await deps.store.settleApproval(runId, {
    resent: resend.resent.length,
    failed: resend.failed,
    skipped: resend.skipped,
    notFound: resend.notFound,
  });
  deps.metrics?.reconcileHeld.dec();
  return { runId, held: ids.length, resend };
}

async function notHeld(store: HeldRunStore, runId: string): Promise<ZerolossError> {
  const run = await store.runHold(runId);
  const why = !run
    ? `there is no reconcile run ${runId}`
    : run.status === 'approved'
      ? `reconcile run ${runId} was already approved by ${run.approvedBy} at ${run.approvedAt?.toISOString()}`
      : `reconcile run ${runId} held nothing for approval`;
  return new ZerolossError('ZL_RUN_NOT_HELD', why, { retryable: false, details: { runId, status: run?.status ?? null } });
}
