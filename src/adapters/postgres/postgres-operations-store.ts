import { quoteIdent } from '../../core/identifier.ts';
import type { MessageState } from '../../ports/outbox-store.ts';
import type {
  AlarmStore,
  AuditEntry,
  CollectorStore,
  BrokerPosition,
  DeadLetterHit,
  DivertRule,
  DivertStore,
  HeldRun,
  HeldRunStore,
  InboxCursor,
  OutboxCursor,
  InboxHit,
  InterventionStore,
  NewAuditEntry,
  OutboxRowView,
  OutboxSummary,
  ReconcileRunSummary,
  ReconcileStore,
  ResendRow,
  ResendSelector,
  ResendStore,
  RetentionStore,
  RetentionTable,
  SequenceAlarm,
  StatusStore,
  StoredOffset,
  TableWriters,
  TopicBacklog,
  TraceStore,
  Transition,
} from '../../ports/operations-store.ts';
import type { Database } from '../../ports/sql-executor.ts';
import { type OperationsSql, operationsSql } from './operations-sql.ts';
import { outboxChannel } from './postgres-outbox-store.ts';

type Row = Record<string, unknown>;
/** `streamFloor`'s answer: where rows still in the WAL stream begin (null: outside the insert-only mode; '0': anywhere). */
type StreamFloor = { floor: string | null; insertOnly: boolean };

/** The operations tools' view of the zeroloss schema. Thin: every statement lives in operations-sql.ts. */
export class PostgresOperationsStore
  implements
    ReconcileStore,
    ResendStore,
    TraceStore,
    StatusStore,
    InterventionStore,
    RetentionStore,
    DivertStore,
    AlarmStore,
    CollectorStore,
    HeldRunStore
{
  readonly schema: string;
  readonly #db: Database;
  readonly #sql: OperationsSql;

  constructor(db: Database, options: { schema?: string } = {}) {
    this.schema = options.schema ?? 'zeroloss';
    this.#db = db;
    this.#sql = operationsSql(quoteIdent(this.schema, 'schema'));
  }

  async #rows(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await this.#db.query<Row>(sql, params)).rows;
  }

  async outboxWindow(
    window: { from: Date; to: Date },
    topics: string[] | undefined,
    after: OutboxCursor | undefined,
    limit: number,
  ): Promise<Array<OutboxRowView & { cursor: OutboxCursor }>> {
    const rows = await this.#rows(this.#sql.outboxWindow, [
      window.from,
      window.to,
      topics ?? null,
      after?.at ?? null,
      after?.seqId ?? null,
      limit,
    ]);
    return rows.map((r) => ({ ...outboxRow(r), cursor: { at: String(r.at_text), seqId: String(r.seq_id) } }));
  }

  async inboxByMessageIds(ids: string[]): Promise<InboxHit[]> {
    if (ids.length === 0) return [];
    return (await this.#rows(this.#sql.inboxByMessageIds, [ids])).map(inboxHit);
  }

  async outboxRows(
    filter: { window: { from: Date; to: Date }; topic?: string; state?: MessageState; key?: string },
    after: OutboxCursor | undefined,
    limit: number,
  ): Promise<Array<OutboxRowView & { cursor: OutboxCursor }>> {
    const rows = await this.#rows(this.#sql.outboxRows, [
      filter.window.from,
      filter.window.to,
      filter.topic ?? null,
      filter.state ?? null,
      filter.key ?? null,
      after?.at ?? null,
      after?.seqId ?? null,
      limit,
    ]);
    return rows.map((r) => ({ ...outboxRow(r), cursor: { at: String(r.at_text), seqId: String(r.seq_id) } }));
  }

  async inboxRows(
    filter: { window: { from: Date; to: Date }; groupId?: string; topic?: string },
    before: InboxCursor | undefined,
    limit: number,
  ): Promise<Array<InboxHit & { cursor: InboxCursor }>> {
    const rows = await this.#rows(this.#sql.inboxRows, [
      filter.window.from,
      filter.window.to,
      filter.groupId ?? null,
      filter.topic ?? null,
      before?.at ?? null,
      before?.groupId ?? null,
      before?.idempotencyKey ?? null,
      limit,
    ]);
    return rows.map((r) => ({
      ...inboxHit(r),
      cursor: { at: String(r.at_text), groupId: String(r.consumer_group), idempotencyKey: String(r.idempotency_key) },
    }));
  }

  async deadLettersByMessageIds(ids: string[]): Promise<DeadLetterHit[]> {
    if (ids.length === 0) return [];
    return (await this.#rows(this.#sql.deadLettersByMessageIds, [ids])).map((r) => ({
      id: String(r.id),
      groupId: String(r.consumer_group),
      messageId: String(r.message_id),
      topic: String(r.topic),
      partition: Number(r.msg_partition),
      offset: BigInt(r.msg_offset as string),
      status: r.status as DeadLetterHit['status'],
      errorCode: String(r.error_code),
      error: String(r.error),
      attempts: Number(r.attempts),
      createdAt: date(r.created_at),
      resolvedAt: nullableDate(r.resolved_at),
      resolvedBy: (r.resolved_by as string | null) ?? null,
      replayCount: Number(r.replay_count),
    }));
  }

  async storedOffsets(groups: string[]): Promise<StoredOffset[]> {
    if (groups.length === 0) return [];
    return (await this.#rows(this.#sql.storedOffsets, [groups])).map(storedOffset);
  }

  async deleteStoredOffsets(groupId: string, topics: string[]): Promise<StoredOffset[]> {
    return (await this.#rows(this.#sql.deleteStoredOffsets, [groupId, topics])).map(storedOffset);
  }

  async markSentFromBroker(found: BrokerPosition[], actor: string): Promise<string[]> {
    if (found.length === 0) return [];
    const rows = await this.#rows(this.#sql.markSentFromBroker, [
      found.map((f) => f.messageId),
      found.map((f) => f.partition),
      found.map((f) => f.offset.toString()),
      found.map((f) => f.timestampMs),
      actor,
    ]);
    return rows.map((r) => String(r.message_id));
  }

  async startRun(kind: string, window: { from: Date; to: Date }): Promise<string> {
    const rows = await this.#rows(this.#sql.runStart, [kind, window.from, window.to]);
    return String(rows[0]?.id);
  }

  async finishRun(id: string, verdict: string, report: unknown, held?: string[]): Promise<void> {
    await this.#db.query(this.#sql.runFinish, [id, verdict, JSON.stringify(report, jsonReplacer), held ?? null]);
  }

  async heldIds(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    return (await this.#rows(this.#sql.heldIds, [ids])).map((r) => String(r.id));
  }

  async heldRuns(limit: number): Promise<HeldRun[]> {
    return (await this.#rows(this.#sql.heldRuns, [limit])).map((r) => ({
      id: String(r.id),
      kind: String(r.kind),
      windowFrom: date(r.window_from),
      windowTo: date(r.window_to),
      finishedAt: date(r.finished_at),
      verdict: String(r.verdict),
      held: Number(r.held),
    }));
  }

  async approveHeld(id: string, actor: string, reason: string): Promise<string[] | undefined> {
    const [r] = await this.#rows(this.#sql.approveHeld, [id, actor, reason]);
    return r ? (r.held_ids as string[]) : undefined;
  }

  async runHold(id: string): Promise<{ status: string | null; approvedBy: string | null; approvedAt: Date | null } | undefined> {
    const [r] = await this.#rows(this.#sql.runHold, [id]);
    if (!r) return undefined;
    return {
      status: (r.status as string | null) ?? null,
      approvedBy: (r.approved_by as string | null) ?? null,
      approvedAt: r.approved_at ? date(r.approved_at) : null,
    };
  }

  async settleApproval(id: string, outcome: Record<string, unknown> | undefined): Promise<void> {
    if (outcome) await this.#db.query(this.#sql.approvalOutcome, [id, JSON.stringify(outcome, jsonReplacer)]);
    else await this.#db.query(this.#sql.approvalUndo, [id]);
  }

  async resendRows(selector: ResendSelector, afterSeqId: string, limit: number): Promise<ResendRow[]> {
    const window = 'window' in selector ? selector.window : undefined;
    const ids = 'ids' in selector ? selector.ids : null;
    const rows = await this.#rows(this.#sql.resendRows, [
      window?.from ?? null,
      window?.to ?? null,
      selector.topics ?? null,
      ids,
      afterSeqId,
      limit,
    ]);
    return rows.map((r) => ({
      seqId: String(r.seq_id),
      messageId: String(r.message_id),
      topic: String(r.topic),
      key: String(r.msg_key),
      headers: r.headers as Record<string, string>,
      payload: Buffer.from(r.payload as Uint8Array),
      state: Number(r.state) as MessageState,
    }));
  }

  async recordResent(
    sent: Array<{ messageId: string; partition: number | null; offset: bigint | null }>,
    actor: string,
    reason: string,
  ): Promise<string[]> {
    if (sent.length === 0) return [];
    const rows = await this.#rows(this.#sql.recordResent, [
      sent.map((s) => s.messageId),
      sent.map((s) => s.partition),
      sent.map((s) => (s.offset === null ? null : s.offset.toString())),
      actor,
      reason,
    ]);
    return rows.map((r) => String(r.message_id));
  }

  async outboxRow(messageId: string): Promise<OutboxRowView | undefined> {
    const [row] = await this.#rows(this.#sql.outboxRow, [messageId]);
    return row ? outboxRow(row) : undefined;
  }

  async transitions(messageId: string): Promise<Transition[]> {
    return (await this.#rows(this.#sql.transitions, [messageId])).map((r) => ({
      from: Number(r.from_state),
      to: Number(r.to_state),
      attempt: Number(r.attempt),
      error: (r.error as string | null) ?? null,
      actor: String(r.actor),
      at: date(r.at),
    }));
  }

  async auditForMessage(messageId: string): Promise<AuditEntry[]> {
    return (await this.#rows(this.#sql.auditForMessage, [messageId])).map(auditEntry);
  }

  /**
   * Whether the outbox is in the insert-only mode and, if so, the seq_id from which rows still in the WAL
   * stream are looked for (operations-sql.ts, `streamFloor`). Read first, so the counting statement gets it
   * as a parameter and reads the primary key from there; outside the mode it reads no such row at all.
   */
  async #streamFloor(): Promise<StreamFloor> {
    const [r] = await this.#rows(this.#sql.streamFloor);
    return { floor: r?.lo == null ? null : String(r.lo), insertOnly: r?.insert_only === true };
  }

  /**
   * Runs the statement for the floor: no rows in the stream to look for (null), every row (0), or the rows
   * from the floor up (it goes after `params`).
   */
  #fromFloor(floor: string | null, [none, all, from]: [string, string, string], params: unknown[]): Promise<Row[]> {
    if (floor === null) return this.#rows(none, params);
    return floor === '0' ? this.#rows(all, params) : this.#rows(from, [...params, floor]);
  }

  /**
   * Both of status's outbox counts from one read of the floor (a round of `status`: the command, serve's
   * collector, the dashboard): read by each count, it ran twice a round.
   */
  async outboxBacklog(stuckAfterMs: number): Promise<{ summary: OutboxSummary; byTopic: TopicBacklog[] }> {
    const floor = await this.#streamFloor();
    const [summary, byTopic] = await Promise.all([this.#outboxSummary(floor, stuckAfterMs), this.#unsentByTopic(floor.floor)]);
    return { summary, byTopic };
  }

  async outboxSummary(stuckAfterMs: number): Promise<OutboxSummary> {
    return this.#outboxSummary(await this.#streamFloor(), stuckAfterMs);
  }

  async unsentByTopic(): Promise<TopicBacklog[]> {
    return this.#unsentByTopic((await this.#streamFloor()).floor);
  }

  async #outboxSummary({ floor, insertOnly }: StreamFloor, stuckAfterMs: number): Promise<OutboxSummary> {
    const [r] = await this.#fromFloor(
      floor,
      [this.#sql.outboxSummary, this.#sql.outboxSummaryAll, this.#sql.outboxSummaryFrom],
      [stuckAfterMs],
    );
    return {
      pending: Number(r?.pending ?? 0),
      failed: Number(r?.failed ?? 0),
      parked: Number(r?.parked ?? 0),
      stuck: Number(r?.stuck ?? 0),
      oldestUnsentAgeMs: Math.max(0, Number(r?.oldest_ms ?? 0)),
      insertOnly,
    };
  }

  async #unsentByTopic(floor: string | null): Promise<TopicBacklog[]> {
    const rows = await this.#fromFloor(floor, [this.#sql.unsentByTopic, this.#sql.unsentByTopicAll, this.#sql.unsentByTopicFrom], []);
    return rows.map((r) => ({
      topic: String(r.topic),
      unsent: Number(r.unsent),
      topicUnavailable: Number(r.topic_unavailable),
      topicError: r.topic_error === null ? null : String(r.topic_error),
    }));
  }

  async parkedRows(limit: number, topic?: string): Promise<OutboxRowView[]> {
    return (await this.#rows(this.#sql.parkedRows, [topic ?? null, limit])).map(outboxRow);
  }

  async throughput(windowMs: number, groups: string[] | undefined) {
    return (await this.#rows(this.#sql.throughput, [windowMs, groups ?? null])).map((r) => ({
      groupId: String(r.consumer_group),
      topic: String(r.topic),
      partition: Number(r.msg_partition),
      applied: Number(r.applied),
    }));
  }

  async knownGroups(): Promise<string[]> {
    return (await this.#rows(this.#sql.knownGroups)).map((r) => String(r.consumer_group)).sort();
  }

  async openDeadLetters(): Promise<Array<{ groupId: string; open: number }>> {
    return (await this.#rows(this.#sql.openDeadLetters)).map((r) => ({ groupId: String(r.consumer_group), open: Number(r.open) }));
  }

  async recentAlarms(sinceMs: number, limit: number): Promise<SequenceAlarm[]> {
    return (await this.#rows(this.#sql.recentAlarms, [sinceMs, limit])).map((r) => ({
      id: String(r.id),
      at: date(r.at),
      groupId: String(r.consumer_group),
      kind: r.kind as SequenceAlarm['kind'],
      topic: String(r.topic),
      partition: Number(r.msg_partition),
      producerId: String(r.producer_id),
      key: String(r.msg_key),
      expected: Number(r.expected),
      received: Number(r.received),
      missing: Number(r.missing),
    }));
  }

  async lastRuns(limit: number): Promise<ReconcileRunSummary[]> {
    return (await this.#rows(this.#sql.lastRuns, [limit])).map((r) => ({
      id: String(r.id),
      kind: String(r.kind),
      windowFrom: date(r.window_from),
      windowTo: date(r.window_to),
      startedAt: date(r.started_at),
      finishedAt: date(r.finished_at),
      verdict: String(r.verdict),
    }));
  }

  async release(ids: string[], actor: string, reason: string | undefined): Promise<string[]> {
    if (ids.length === 0) return [];
    return (await this.#rows(this.#sql.release, [ids, actor, reason ?? null])).map((r) => String(r.message_id));
  }

  async discard(ids: string[], actor: string, reason: string): Promise<string[]> {
    if (ids.length === 0) return [];
    return (await this.#rows(this.#sql.discard, [ids, actor, reason])).map((r) => String(r.message_id));
  }

  async audit(entry: NewAuditEntry): Promise<void> {
    await this.#db.query(this.#sql.audit, [
      entry.actor,
      entry.action,
      entry.subject,
      entry.messageId ?? null,
      entry.reason ?? null,
      JSON.stringify(entry.details ?? {}, jsonReplacer),
    ]);
  }

  async recentAudit(sinceMs: number, limit: number): Promise<AuditEntry[]> {
    return (await this.#rows(this.#sql.recentAudit, [sinceMs, limit])).map(auditEntry);
  }

  async wakeRelays(): Promise<void> {
    await this.#db.query(this.#sql.notify, [outboxChannel(this.schema)]);
  }

  async deleteBatch(table: RetentionTable, olderThanMs: number, limit: number): Promise<number> {
    const sql = {
      outbox: this.#sql.deleteSentOutbox,
      inbox: this.#sql.deleteInbox,
      dead_letter: this.#sql.deleteResolvedDeadLetters,
      reconcile_run: this.#sql.deleteRuns,
      sequence_alarm: this.#sql.deleteAlarms,
    }[table];
    const [r] = await this.#rows(sql, [olderThanMs, limit]);
    return Number(r?.deleted ?? 0);
  }

  async divertRules(): Promise<DivertRule[]> {
    return (await this.#rows(this.#sql.divertRules)).map((r) => ({
      topic: String(r.topic),
      type: String(r.msg_type),
      target: String(r.target_topic),
      createdAt: date(r.created_at),
      createdBy: String(r.created_by),
      reason: (r.reason as string | null) ?? null,
    }));
  }

  async setDivert(topic: string, types: string[], target: string, actor: string, reason: string | undefined): Promise<void> {
    await this.#db.query(this.#sql.divertSet, [topic, types, target, actor, reason ?? null]);
  }

  async removeDivert(topic: string, types: string[]): Promise<string[]> {
    return (await this.#rows(this.#sql.divertRemove, [topic, types])).map((r) => String(r.msg_type));
  }

  async divertUnsent(topic: string, types: string[], target: string): Promise<number> {
    const [r] = await this.#rows(this.#sql.divertUnsent, [topic, types, target]);
    return Number(r?.moved ?? 0);
  }

  async recordAlarm(groupId: string, a: Omit<SequenceAlarm, 'id' | 'at' | 'groupId'>): Promise<void> {
    await this.#db.query(this.#sql.recordAlarm, [
      groupId,
      a.kind,
      a.topic,
      a.partition,
      a.producerId,
      a.key,
      a.expected,
      a.received,
      a.missing,
    ]);
  }

  /** For the metrics collector: the newest transition and alarm ids (where to start counting). */
  async cursors(): Promise<{ transition: string; alarm: string }> {
    const [t] = await this.#rows(this.#sql.maxTransitionId);
    const [a] = await this.#rows(this.#sql.maxAlarmId);
    return { transition: String(t?.id ?? '0'), alarm: String(a?.id ?? '0') };
  }

  async tableWriters(): Promise<TableWriters> {
    const [r] = await this.#rows(this.#sql.tableWriters);
    const ids = (v: unknown) => (v as unknown[] | undefined)?.map(String) ?? [];
    return { now: date(r?.now), transition: ids(r?.transition), alarm: ids(r?.alarm), inbox: ids(r?.inbox) };
  }

  async transitionsSince(afterId: string, limit: number, gapIds: string[] = []) {
    const rows = await this.#rows(this.#sql.transitionsSince, [afterId, limit, gapIds]);
    return rows.map((r) => ({
      id: String(r.id),
      from: Number(r.from_state),
      to: Number(r.to_state),
      attempt: Number(r.attempt),
      actor: String(r.actor),
      sinceCommitSeconds: r.since_commit_s === null ? null : Number(r.since_commit_s),
    }));
  }

  async appliedBetween(from: Date, to: Date) {
    return (await this.#rows(this.#sql.appliedBetween, [from, to])).map((r) => ({
      groupId: String(r.consumer_group),
      processedAt: date(r.processed_at),
      endToEndSeconds: r.end_to_end_s === null ? null : Number(r.end_to_end_s),
    }));
  }

  async alarmsSince(afterId: string, limit = 5_000, gapIds: string[] = []) {
    return (await this.#rows(this.#sql.alarmsSince, [afterId, limit, gapIds])).map((r) => ({
      id: String(r.id),
      groupId: String(r.consumer_group),
      kind: String(r.kind),
      topic: String(r.topic),
    }));
  }
}

function date(v: unknown): Date {
  return v instanceof Date ? v : new Date(v as string);
}

function nullableDate(v: unknown): Date | null {
  return v === null || v === undefined ? null : date(v);
}

function inboxHit(r: Row): InboxHit {
  return {
    groupId: String(r.consumer_group),
    idempotencyKey: String(r.idempotency_key),
    messageId: String(r.message_id),
    topic: String(r.topic),
    partition: Number(r.msg_partition),
    offset: BigInt(r.msg_offset as string),
    processedAt: date(r.processed_at),
  };
}

function outboxRow(r: Row): OutboxRowView {
  return {
    seqId: String(r.seq_id),
    messageId: String(r.message_id),
    topic: String(r.topic),
    key: String(r.msg_key),
    type: String(r.msg_type),
    traceId: String(r.trace_id),
    producerId: String(r.producer_id),
    keySeq: Number(r.key_seq),
    state: Number(r.state) as MessageState,
    attempts: Number(r.attempts),
    lastError: (r.last_error as string | null) ?? null,
    createdAt: date(r.created_at),
    modifiedAt: date(r.modified_time),
    nextAttemptAt: date(r.next_attempt_at),
    leaseOwner: (r.lease_owner as string | null) ?? null,
    leaseUntil: nullableDate(r.lease_until),
    sentAt: nullableDate(r.sent_at),
    sentPartition: r.sent_partition === null || r.sent_partition === undefined ? null : Number(r.sent_partition),
    sentOffset: r.sent_offset === null || r.sent_offset === undefined ? null : BigInt(r.sent_offset as string),
    inStream: r.in_stream === true,
  };
}

function auditEntry(r: Row): AuditEntry {
  return {
    id: String(r.id),
    at: date(r.at),
    actor: String(r.actor),
    action: String(r.action),
    subject: String(r.subject),
    messageId: (r.message_id as string | null | undefined) ?? null,
    reason: (r.reason as string | null) ?? null,
    details: (r.details as Record<string, unknown> | undefined) ?? undefined,
  };
}

export function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

function storedOffset(r: Record<string, unknown>): StoredOffset {
  return {
    groupId: String(r.consumer_group),
    topic: String(r.topic),
    partition: Number(r.msg_partition),
    offset: BigInt(r.next_offset as string),
  };
}
