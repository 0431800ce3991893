/**
 * `zeroloss/operations`: the tools behind the `zeroloss` commands, as functions. Each takes ports, which the
 * bundles carry: `status({ store: store.operations, broker: transport.inspector })`.
 */
export { reconcile, type ReconcileOptions, type ReconcileReport } from '../operations/reconcile.ts';
export { ReconcileScheduler, type ReconcileSchedule } from '../operations/reconcile-scheduler.ts';
export { approveHeldRun, type ApproveResult } from '../operations/approve-held-run.ts';
export { resend, type ResendOptions, type ResendResult } from '../operations/resend.ts';
export { trace, type MessageTrace, type TraceOptions } from '../operations/trace.ts';
export { status, type Status, type StatusOptions } from '../operations/status.ts';
export {
  confirmations,
  confirmationStatus,
  type Confirmation,
  type ConfirmationStatusOptions,
  type GroupConfirmations,
} from '../operations/confirmations.ts';
export { storeReceipts, listenReceipts } from '../operations/store-receipts.ts';
export { startProducerControl, type ProducerControl, type ProducerControlOptions } from '../operations/producer-control.ts';
export { listenControl, ControlSender, type ControlHandlers, type ControlListener } from '../operations/control-channel.ts';
export { CONTROL_TOPIC, type ControlMessage } from '../core/control-message.ts';
export { ReceiptReporter, type ReceiptReporterOptions } from '../consumer/receipt-reporter.ts';
export type { ReceiptStore, MessageConfirmation, GroupConfirmationSummary } from '../ports/receipt-store.ts';
export {
  listStuckWork,
  releaseParked,
  discardParked,
  replayDeadLettersAudited,
  discardDeadLettersAudited,
} from '../operations/intervention.ts';
export { cleanup, type RetentionConfig } from '../operations/retention.ts';
export { raisePartitions, forwardBacklog, forwardAgain, divert, undivert, FORWARDED_HEADER } from '../operations/backlog.ts';
export { DegradeSwitches, setDegrade, type SwitchReader } from '../operations/degrade-switches.ts';
export { BacklogPolicy, groupLag, type BacklogPolicyOptions } from '../operations/backlog-policy.ts';
export { DEFERRED_HEADER, type DeferRules } from '../consumer/middleware/defer.ts';
export { createOpsMetrics, type OpsMetrics } from '../operations/ops-metrics.ts';
export { OpsCollector } from '../operations/ops-collector.ts';
export { recordSequenceAlarms } from '../operations/sequence-alarms.ts';
export { parseTime, parseDuration } from '../operations/time-window.ts';
export { replayDeadLetters, deadLetterIds } from '../consumer/dead-letters.ts';
