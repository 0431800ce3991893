import { z } from 'zod';
import { parseConfig } from '../core/config.ts';
import { HEADER } from '../core/envelope.ts';
import type { BrokerInspector, ReadStats } from '../ports/broker-inspector.ts';
import type { OutboxCursor, OutboxRowView, ReconcileStore, ResendStore } from '../ports/operations-store.ts';
import type { UnbuiltRows, UnbuiltStore } from '../ports/parked-source.ts';
import type { Publisher } from '../ports/transport.ts';
import { readWindow, retryTopicsOf } from './broker-window.ts';
import type { OpsMetrics } from './ops-metrics.ts';
import {
  type ExpectedMessage,
  type GroupOutcome,
  type GroupView,
  type Verdict,
  classifyGroup,
  partKey,
  verdictOf,
} from './reconcile-classify.ts';
import { type ResendResult, resend } from './resend.ts';
import type { TimeWindow } from './time-window.ts';

export const reconcileOptionsSchema = z
  .object({
    /** Limit to these topics; default every topic the outbox wrote to in the window. */
    topics: z.array(z.string().min(1)).optional(),
    /**
     * Consumer groups to check. Default: the groups whose inbox or dead letters hold any message of the
     * window. Name a group to catch one that applied nothing at all in the window.
     */
    groups: z.array(z.string().min(1)).optional(),
    /** Broker timestamps are the producer's clock: the scan reads this much before and after the window. */
    brokerSlackMs: z.number().int().nonnegative().default(60_000),
    /** An unsent row older than this is stuck (reported, needs attention). */
    stuckAfterMs: z.number().int().positive().default(300_000),
    /** Rows read from the outbox per query. */
    pageSize: z.number().int().positive().default(5_000),
    /** Ids listed per category in the report (counts are always complete). */
    listLimit: z.number().int().positive().default(1_000),
    /** P5: mark rows sent whose message the broker already holds (no resend). */
    markAcked: z.boolean().default(true),
    /** Re-publish missing messages from the outbox (needs a publisher). */
    repair: z.boolean().default(false),
    /**
     * The escalation threshold (O8; 1,000 in the source): up to this many missing messages are re-published
     * automatically. Above it the run escalates: nothing is re-published, and the run is stored held with
     * every missing id until a person approves it (`approveHeldRun`) — unless `confirmed`.
     */
    maxAutoRepair: z.number().int().nonnegative().default(1_000),
    confirmed: z.boolean().default(false),
    /** Write nothing: no repair, no run record. */
    dryRun: z.boolean().default(false),
    actor: z.string().min(1).default('reconcile'),
    /** 'manual', or the schedule's name ('recent', 'nightly'). */
    kind: z.string().min(1).default('manual'),
  })
  .strict();

export type ReconcileOptions = z.input<typeof reconcileOptionsSchema>;

export interface UnsentRow {
  messageId: string;
  topic: string;
  state: number;
  attempts: number;
  ageMs: number;
  lastError: string | null;
}

export interface ReconcileReport {
  runId: string | undefined;
  kind: string;
  window: { from: string; to: string };
  topics: string[];
  verdict: Verdict;
  counts: {
    committed: number;
    sent: number;
    pending: number;
    failed: number;
    parked: number;
    stuck: number;
    onBroker: number;
    brokerCopies: number;
    missingOnBroker: number;
    duplicatedOnBroker: number;
    ackedNotMarked: number;
    unverified: number;
  };
  missing: { broker: string[]; groups: Record<string, string[]> };
  /**
   * Whether the broker stage was read. When it was not (a transport with no inspector),
   * nothing is called missing on the broker, and a sent message no group applied counts as in flight:
   * the outbox is compared with the inboxes alone.
   */
  brokerStage: { read: true } | { read: false; note: string };
  duplicates: Array<{ messageId: string; copies: number }>;
  /** P5: unsent rows the broker already held; marked sent unless `marked` is false. */
  ackedNotMarked: { ids: string[]; marked: boolean };
  stuck: UnsentRow[];
  parked: UnsentRow[];
  /**
   * A state-column source's rows of the window that have no message to check by id (never claimed, parked
   * unbuilt, or their topic unknown): stuck ones need a person, the others are on their way. Empty for the
   * outbox, whose rows have their message from the commit.
   */
  unbuilt: UnbuiltRows;
  groups: Array<Omit<GroupOutcome, 'missing' | 'deadLettered'> & { missing: number; deadLettered: number }>;
  deadLettered: Array<{ group: string; messageId: string }>;
  scan: { records: number; incomplete: ReadStats['incomplete'] };
  repair: (Omit<ResendResult, 'skipped'> & { skipped?: string }) | undefined;
  /**
   * Set when the run escalated (O8): more messages were missing than `limit`, so none was re-published and
   * the run is stored held with all `count` ids, for a person to approve (`zeroloss reconcile --approve`).
   */
  held: { count: number; limit: number } | undefined;
  /** Missing ids an earlier held run holds: left to its approval (neither held again nor re-published). */
  awaitingApproval: number;
  /** Some id list was cut at `listLimit`. */
  truncated: boolean;
}

export interface ReconcileDeps {
  /** `unbuiltRows`: a state-column source's (see sourceReconcileStore). */
  store: ReconcileStore & ResendStore & Partial<UnbuiltStore>;
  /** Undefined when the transport has no inspector: see `brokerStage` in the report. */
  broker: BrokerInspector | undefined;
  /** Says why the broker was not read, when `broker` is undefined. */
  brokerNotRead?: string;
  /** Needed for `repair`. */
  publisher?: Publisher;
  metrics?: OpsMetrics;
}

const ID_CHUNK = 1_000;

export const BROKER_NOT_READ = 'broker not read (the transport has no inspector: it cannot be read without consuming)';

/**
 * Reconciliation (O2, P5): compares by message id what the outbox committed in a window, what the broker
 * holds (read back partition by partition) and what each consumer group applied, and says where anything
 * went missing. The order of the reads matters: outbox first, then the broker (so a row marked sent before
 * the outbox read has its record below the broker's end), then each group's committed offsets, then the
 * inboxes (so a group that committed past a message has its inbox row visible, C1).
 */
export async function reconcile(deps: ReconcileDeps, window: TimeWindow, options: ReconcileOptions = {}): Promise<ReconcileReport> {
  const o = parseConfig(reconcileOptionsSchema, options, 'reconcile');
  const runId = o.dryRun ? undefined : await deps.store.startRun(o.kind, window);
  try {
    const { report, held } = await run(deps, window, o, runId);
    report.runId = runId;
    if (runId) await deps.store.finishRun(runId, report.verdict, report, held);
    record(deps.metrics, report);
    return report;
  } catch (error) {
    deps.metrics?.reconcileFailures.inc({ kind: o.kind });
    if (runId) await deps.store.finishRun(runId, 'failed', { error: String(error) }).catch(() => {});
    throw error;
  }
}

async function run(
  deps: ReconcileDeps,
  window: TimeWindow,
  o: z.output<typeof reconcileOptionsSchema>,
  runId: string | undefined,
): Promise<{ report: ReconcileReport; held: string[] | undefined }> {
  const now = Date.now();
  const expected = new Map<string, ExpectedMessage>();
  const rows = new Map<string, Pick<OutboxRowView, 'state' | 'attempts' | 'lastError' | 'createdAt' | 'sentPartition' | 'sentOffset'>>();
  // Per topic, how far past the window the broker scan must read to see the copies of these rows.
  const readUntil = new Map<string, number>();
  let after: OutboxCursor | undefined;
  for (;;) {
    const page = await deps.store.outboxWindow(window, o.topics, after, o.pageSize);
    for (const r of page) {
      expected.set(r.messageId, { messageId: r.messageId, topic: r.topic, state: r.state, copies: [], retrying: false, unverified: false });
      rows.set(r.messageId, r);
      // A copy is written when a send happens: at sent_at for sent rows, before the lease ends for rows whose
      // ack may never have been recorded.
      const last = Math.max(window.to.getTime(), r.sentAt?.getTime() ?? 0, r.state !== 1 ? (r.leaseUntil?.getTime() ?? 0) : 0);
      readUntil.set(r.topic, Math.max(readUntil.get(r.topic) ?? 0, last));
    }
    if (page.length < o.pageSize) break;
    after = page[page.length - 1]?.cursor;
  }
  const topics = [...readUntil.keys()].sort();

  // The broker, partition by partition; only the ids of this window are kept.
  const stats: ReadStats = { records: 0, incomplete: [] };
  const broker = deps.broker;
  const allTopics = broker && topics.length > 0 ? await broker.listTopics() : [];
  for (const topic of broker ? topics : []) {
    const from = window.from.getTime() - o.brokerSlackMs;
    const to = (readUntil.get(topic) as number) + o.brokerSlackMs;
    for await (const record of readWindow(broker!, topic, from, to, stats)) {
      const m = expected.get(record.headers[HEADER.id] ?? '');
      if (m && m.topic === topic) m.copies.push({ partition: record.partition, offset: record.offset, timestampMs: record.timestamp });
    }
    for (const retry of retryTopicsOf(topic, allTopics)) {
      for await (const record of readWindow(broker!, retry, from, now + o.brokerSlackMs, stats)) {
        const m = expected.get(record.headers[HEADER.id] ?? '');
        if (m) m.retrying = true;
      }
    }
  }
  for (const gap of stats.incomplete) {
    for (const m of expected.values()) {
      const row = rows.get(m.messageId);
      if (
        m.topic === gap.topic &&
        m.copies.length === 0 &&
        row?.sentPartition === gap.partition &&
        (row.sentOffset ?? -1n) >= gap.reached
      ) {
        m.unverified = true;
      }
    }
  }

  // Unread, absence on the broker proves nothing: a sent message no group applied is in flight, not missing.
  if (!broker) for (const m of expected.values()) m.unverified = true;

  // P5: unsent rows whose message the broker holds were acked; the ack was never recorded.
  const acked = [...expected.values()].filter((m) => m.state !== 1 && m.copies.length > 0);
  const marked = o.markAcked && !o.dryRun && acked.length > 0;
  if (marked) {
    for (let i = 0; i < acked.length; i += ID_CHUNK) {
      const chunk = acked.slice(i, i + ID_CHUNK).map((m) => {
        const c = m.copies[0] as ExpectedMessage['copies'][number];
        return { messageId: m.messageId, partition: c.partition, offset: c.offset, timestampMs: c.timestampMs };
      });
      const done = new Set(await deps.store.markSentFromBroker(chunk, o.actor));
      for (const m of acked) if (done.has(m.messageId)) m.state = 1;
    }
    deps.metrics?.markedSent.inc(acked.filter((m) => m.state === 1).length);
  }

  const groups = await groupViews(deps, expected, o.groups);
  const outcomes = groups.map((g) => classifyGroup(g, expected.values()));
  // The inbox and the dead letters were read before the committed offsets: a group may have applied or
  // dead-lettered a message and committed past it in between. The suspects are looked up once more, now
  // that the commits are known (C1: effect, or dead letter, first).
  const suspects = [...new Set(outcomes.flatMap((g) => g.missing))];
  if (suspects.length > 0) {
    for (const hit of await inChunks(suspects, (ids) => deps.store.inboxByMessageIds(ids))) {
      groups.find((g) => g.groupId === hit.groupId)?.applied.add(hit.messageId);
    }
    for (const d of await inChunks(suspects, (ids) => deps.store.deadLettersByMessageIds(ids))) {
      groups.find((g) => g.groupId === d.groupId)?.deadLetters.set(d.messageId, d.status);
    }
    outcomes.splice(0, outcomes.length, ...groups.map((g) => classifyGroup(g, expected.values())));
  }

  const all = [...expected.values()];
  const missingOnBroker = all.filter((m) => m.state === 1 && m.copies.length === 0 && !m.unverified).map((m) => m.messageId);
  const unsent = all.filter((m) => m.state !== 1);
  const view = (m: ExpectedMessage): UnsentRow => {
    const r = rows.get(m.messageId) as NonNullable<ReturnType<typeof rows.get>>;
    return {
      messageId: m.messageId,
      topic: m.topic,
      state: m.state,
      attempts: r.attempts,
      ageMs: now - r.createdAt.getTime(),
      lastError: r.lastError,
    };
  };
  const stuck = unsent.filter((m) => m.state !== 3 && now - (rows.get(m.messageId)?.createdAt.getTime() ?? now) > o.stuckAfterMs).map(view);
  const parked = unsent.filter((m) => m.state === 3).map(view);
  const duplicates = all.filter((m) => m.copies.length > 1).map((m) => ({ messageId: m.messageId, copies: m.copies.length }));
  const unbuilt = deps.store.unbuiltRows
    ? await deps.store.unbuiltRows(window, o.stuckAfterMs, o.listLimit)
    : { count: 0, stuck: 0, rows: [] };

  // Repair: re-publish what the broker lost, and what a group passed without an effect.
  const missing = [...new Set([...missingOnBroker, ...outcomes.flatMap((g) => g.missing)])];
  // Ids an earlier run holds wait for that run's approval: overlapping windows (the recent window every few
  // minutes, then the nightly) must neither hold them again nor re-publish them behind the person's back.
  const waiting = new Set(missing.length > 0 ? await inChunks(missing, (ids) => deps.store.heldIds(ids)) : []);
  const targets = missing.filter((id) => !waiting.has(id));
  // Escalation (O8): a loss this large is an incident, not drift; a person decides, with every id kept. It
  // does not depend on `repair`: without it nothing is re-published either, but the loss is still held.
  const held = runId !== undefined && !o.confirmed && targets.length > o.maxAutoRepair ? targets : undefined;
  let repair: ReconcileReport['repair'];
  if (o.repair && targets.length > 0) {
    if (held) {
      repair = {
        selected: targets.length,
        resent: [],
        failed: [],
        notFound: [],
        skipped: `${targets.length} missing messages exceed the automatic repair limit of ${o.maxAutoRepair}: held for approval (zeroloss reconcile --approve ${runId} --reason …)`,
      };
    } else if (!deps.publisher) {
      repair = { selected: 0, resent: [], failed: [], notFound: [], skipped: 'no publisher to re-publish with' };
    } else if (o.dryRun) {
      repair = { selected: targets.length, resent: [], failed: [], notFound: [], skipped: 'dry run' };
    } else {
      const result = await resend(
        { store: deps.store, publisher: deps.publisher, metrics: deps.metrics },
        { ids: targets },
        {
          actor: o.actor,
          reason: `reconcile ${window.from.toISOString()}..${window.to.toISOString()}: missing at ${missingOnBroker.length > 0 ? 'the broker' : 'a consumer group'}`,
          metricReason: 'reconcile',
        },
      );
      repair = { selected: result.selected, resent: result.resent, failed: result.failed, notFound: result.notFound };
    }
  }

  const deadLettered = outcomes.flatMap((g) => g.deadLettered.map((messageId) => ({ group: g.groupId, messageId })));
  const missingInGroups = outcomes.reduce((n, g) => n + g.missing.length, 0);
  const verdict = verdictOf({
    missingOnBroker: missingOnBroker.length,
    missingInGroups,
    // Ids waiting for a held run's approval are still missing: not repaired.
    repairedAll: repair !== undefined && repair.skipped === undefined && repair.resent.length === targets.length && waiting.size === 0,
    needsPerson: stuck.length + parked.length + deadLettered.length + stats.incomplete.length + (marked ? 0 : acked.length) + unbuilt.stuck,
    inFlight: outcomes.reduce((n, g) => n + g.inFlight, 0) + unsent.length + unbuilt.count - unbuilt.stuck,
  });

  let truncated = false;
  const cap = <T>(list: T[]): T[] => {
    if (list.length <= o.listLimit) return list;
    truncated = true;
    return list.slice(0, o.listLimit);
  };
  const count = (state: number) => all.filter((m) => rows.get(m.messageId)?.state === state).length;
  const report: ReconcileReport = {
    runId: undefined,
    kind: o.kind,
    window: { from: window.from.toISOString(), to: window.to.toISOString() },
    topics,
    verdict,
    counts: {
      committed: all.length,
      sent: count(1),
      pending: count(0),
      failed: count(2),
      parked: count(3),
      stuck: stuck.length,
      onBroker: all.filter((m) => m.copies.length > 0).length,
      brokerCopies: all.reduce((n, m) => n + m.copies.length, 0),
      missingOnBroker: missingOnBroker.length,
      duplicatedOnBroker: duplicates.length,
      ackedNotMarked: acked.length,
      unverified: all.filter((m) => m.unverified && m.copies.length === 0).length,
    },
    missing: { broker: cap(missingOnBroker), groups: Object.fromEntries(outcomes.map((g) => [g.groupId, cap(g.missing)])) },
    brokerStage: broker ? { read: true } : { read: false, note: deps.brokerNotRead ?? BROKER_NOT_READ },
    duplicates: cap(duplicates),
    ackedNotMarked: { ids: cap(acked.map((m) => m.messageId)), marked },
    stuck: cap(stuck),
    parked: cap(parked),
    unbuilt,
    groups: outcomes.map((g) => ({ ...g, missing: g.missing.length, deadLettered: g.deadLettered.length })),
    deadLettered: cap(deadLettered),
    scan: { records: stats.records, incomplete: stats.incomplete },
    repair: repair ? { ...repair, resent: cap(repair.resent), failed: cap(repair.failed) } : undefined,
    held: held ? { count: held.length, limit: o.maxAutoRepair } : undefined,
    awaitingApproval: waiting.size,
    truncated: truncated || unbuilt.rows.length < unbuilt.count,
  };
  return { report, held };
}

/** Each group's applied ids, dead letters, topics and committed offsets (broker commit or stored with the effect). */
async function groupViews(deps: ReconcileDeps, expected: Map<string, ExpectedMessage>, named: string[] | undefined): Promise<GroupView[]> {
  const ids = [...expected.keys()];
  const inbox = await inChunks(ids, (chunk) => deps.store.inboxByMessageIds(chunk));
  const dead = await inChunks(ids, (chunk) => deps.store.deadLettersByMessageIds(chunk));
  const views = new Map<string, GroupView>();
  const view = (groupId: string): GroupView => {
    let v = views.get(groupId);
    if (!v) {
      v = { groupId, topics: new Set(), committed: new Map(), applied: new Set(), deadLetters: new Map() };
      views.set(groupId, v);
    }
    return v;
  };
  for (const g of named ?? []) view(g);
  for (const hit of inbox) {
    if (named && !named.includes(hit.groupId)) continue;
    const v = view(hit.groupId);
    v.applied.add(hit.messageId);
    const m = expected.get(hit.messageId);
    if (m) v.topics.add(m.topic);
  }
  for (const d of dead) {
    if (named && !named.includes(d.groupId)) continue;
    const v = view(d.groupId);
    v.deadLetters.set(d.messageId, d.status);
    const m = expected.get(d.messageId);
    if (m) v.topics.add(m.topic);
  }
  const windowTopics = new Set([...expected.values()].map((m) => m.topic));
  const stored = await deps.store.storedOffsets([...views.keys()]);
  for (const v of views.values()) {
    const commits = [
      ...(deps.broker ? await deps.broker.committedOffsets(v.groupId) : []),
      ...stored.filter((s) => s.groupId === v.groupId).map((s) => ({ topic: s.topic, partition: s.partition, offset: s.offset })),
    ];
    for (const c of commits) {
      if (windowTopics.has(c.topic)) v.topics.add(c.topic);
      const key = partKey(c.topic, c.partition);
      const current = v.committed.get(key);
      if (current === undefined || c.offset > current) v.committed.set(key, c.offset);
    }
  }
  return [...views.values()].sort((a, b) => a.groupId.localeCompare(b.groupId));
}

async function inChunks<T>(ids: string[], fn: (chunk: string[]) => Promise<T[]>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < ids.length; i += ID_CHUNK) out.push(...(await fn(ids.slice(i, i + ID_CHUNK))));
  return out;
}

function record(metrics: OpsMetrics | undefined, r: ReconcileReport): void {
  if (!metrics) return;
  metrics.reconcileRuns.inc({ kind: r.kind, verdict: r.verdict });
  metrics.reconcileMissing.set({ kind: r.kind, stage: 'broker' }, r.counts.missingOnBroker);
  for (const g of r.groups) metrics.reconcileMissing.set({ kind: r.kind, stage: `group:${g.groupId}` }, g.missing);
  metrics.reconcileGaps.inc({ kind: r.kind }, r.counts.missingOnBroker + r.groups.reduce((n, g) => n + g.missing, 0));
  metrics.reconcileLastRun.set({ kind: r.kind }, Date.now() / 1000);
  if (r.held) {
    metrics.reconcileEscalations.inc({ kind: r.kind });
    // At once, for the alert; the collector sets the true count (approvals elsewhere) on its next round.
    metrics.reconcileHeld.inc();
  }
}
