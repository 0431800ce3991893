import type { DegradeSwitch } from '../ports/backlog-store.ts';
import type { BrokerInspector } from '../ports/broker-inspector.ts';
import type { ParkedSource, SourceRowView } from '../ports/parked-source.ts';
import type { BacklogStats } from '../ports/outbox-store.ts';
import type {
  DivertRule,
  HeldRun,
  OutboxSummary,
  ReconcileRunSummary,
  SequenceAlarm,
  StatusStore,
  TopicBacklog,
} from '../ports/operations-store.ts';
import type { ReceiptStore } from '../ports/receipt-store.ts';
import { type ConfirmationStatusOptions, type GroupConfirmations, confirmationStatus } from './confirmations.ts';
import { partKey } from './reconcile-classify.ts';
import type { GapSummary, SequenceStore } from '../ports/sequence-store.ts';

export interface StatusOptions {
  /** Groups to report; default the groups this schema knows (inbox rows, stored offsets, open dead letters). */
  groups?: string[];
  /** Unsent rows older than this are stuck. Default 5 min. */
  stuckAfterMs?: number;
  /** Throughput is measured over this window. Default 60 s. */
  throughputWindowMs?: number;
  /** Alarms of this recent past are listed. Default 24 h. */
  alarmsSinceMs?: number;
  /** Parked rows listed. Default 20. */
  parkedLimit?: number;
  /** Held reconciliation runs listed. Default 20. */
  heldRunsLimit?: number;
  /** Two-way confirmation (with a receipt store): expected groups, window and grace; see confirmationStatus. */
  confirmations?: ConfirmationStatusOptions;
}

export interface PartitionStatus {
  topic: string;
  partition: number;
  /** Next offset the group reads (broker commit or the offset stored with the effects); null when none. */
  committed: string | null;
  /** The partition's high watermark. */
  end: string;
  /** end - committed; null when the group has no committed offset here. */
  lag: string | null;
  /** Effects applied per second over the throughput window. */
  appliedPerSecond: number;
}

export interface GroupStatus {
  group: string;
  partitions: PartitionStatus[];
  lag: string;
  appliedPerSecond: number;
  openDeadLetters: number;
}

/** A topic whose unsent rows cannot be sent until someone creates it or grants access: they wait, uncharged. */
export interface UnavailableTopic {
  topic: string;
  reason: 'missing' | 'unauthorized';
  /** Unsent rows of the topic. */
  waiting: number;
  /** The relay's latest error for it, when it tried. */
  lastError: string | null;
}

/** A business table relayed from its own send-state column: its unsent rows and the parked ones. */
export interface SourceStatus {
  name: string;
  pending: number;
  failed: number;
  parked: number;
  oldestUnsentAgeMs: number;
  /** Some unsent row is older than the stuck threshold. */
  stuck: boolean;
  /** Unsent rows older than the stuck threshold (by the creation-time column, else the modified time). */
  stuckRows: number;
  parkedRows: SourceRowView[];
}

/** A logical replication slot on the outbox's database (the WAL relay's, docs/wal-relay.md). */
export interface ReplicationSlotView {
  slot: string;
  /** A relay reads it now. */
  active: boolean;
  /** WAL the server keeps for it: what an abandoned slot costs the primary's disk. */
  retainedBytes: number;
  /** WAL written since its confirmed position: what the relay has not confirmed yet. */
  lagBytes: number;
  /** pg_replication_slots.wal_status: 'lost' means the WAL it needs is gone (the relay must rebuild). */
  walStatus: string;
  /** Which relay reads it (its replication connection's application_name: a sharded relay's instance id). */
  holder?: string | null;
}

/** A state-column source as status asks it: its backlog, with rows unsent for longer than the threshold. */
export type StatusSource = ParkedSource & { backlog(stuckAfterMs: number): Promise<BacklogStats & { stuck: number }> };

export interface Status {
  at: string;
  outbox: OutboxSummary;
  /** The state-column sources asked about (declared in the settings file for the CLI). */
  sources: SourceStatus[];
  /** Alarm: topics whose rows wait because the broker lacks the topic or refuses the relay access. */
  unavailableTopics: UnavailableTopic[];
  parked: Array<{ messageId: string; topic: string; type: string; attempts: number; lastError: string | null; parkedSince: string }>;
  groups: GroupStatus[];
  alarms: SequenceAlarm[];
  lastReconcile: ReconcileRunSummary[];
  /**
   * Reconciliation runs that found more missing messages than the automatic repair limit (O8): nothing was
   * re-published, and they wait for a person (`zeroloss reconcile --approve <run>`).
   */
  heldRuns: HeldRun[];
  /**
   * Two-way confirmation, per expected consumer group: recently sent messages it confirmed by receipt, and
   * the oldest it did not. Empty without a receipt store.
   */
  confirmations: GroupConfirmations[];
  /** What is degraded now (O10): the switches that are on and the divert rules in force. Empty without `degrade`. */
  degraded: { switches: DegradeSwitch[]; diverts: DivertRule[] };
  /** Open sequence gaps per consumer group (C9, consumers with `control`); empty without `gaps`. */
  sequenceGaps: GapSummary[];
  /** Logical replication slots of the database (WAL relay): retained WAL and lag. Empty without `walSlots`. */
  walSlots: ReplicationSlotView[];
  /** Problems found while asking (a group the broker does not know, a topic gone). */
  warnings: string[];
}

/**
 * How far behind are we (O1, O4): outbox counts by state, the oldest unsent age and parked rows; per group
 * and partition the committed offset, end offset, lag and throughput; recent sequence alarms and the last
 * reconciliation runs.
 */
export async function status(
  deps: {
    store: StatusStore;
    /** The degrade switches and divert rules, for `degraded`. */
    degrade?: { switches(): Promise<DegradeSwitch[]>; divertRules(): Promise<DivertRule[]> };
    broker?: BrokerInspector;
    sources?: ReadonlyArray<StatusSource>;
    receipts?: Pick<ReceiptStore, 'receiptGroups' | 'groupConfirmations'>;
    /** The consumer groups' persistent sequence gaps (C9). */
    gaps?: Pick<SequenceStore, 'gapSummary'>;
    /** Logical replication slots to report (the WAL relay's). A failure to read them is a warning. */
    walSlots?: () => Promise<ReplicationSlotView[]>;
  },
  options: StatusOptions = {},
): Promise<Status> {
  const windowMs = options.throughputWindowMs ?? 60_000;
  const stuckAfterMs = options.stuckAfterMs ?? 300_000;
  const sources = await Promise.all(
    (deps.sources ?? []).map(async (source): Promise<SourceStatus> => {
      const [b, parkedRows] = await Promise.all([source.backlog(stuckAfterMs), source.parkedRows(options.parkedLimit ?? 20)]);
      return {
        name: source.name,
        pending: b.pending,
        failed: b.failed,
        parked: b.parked,
        oldestUnsentAgeMs: b.oldestUnsentAgeMs,
        stuck: b.stuck > 0,
        stuckRows: b.stuck,
        parkedRows,
      };
    }),
  );
  const [{ summary: outbox, byTopic }, parkedRows, known, openDead, alarms, lastReconcile, heldRuns] = await Promise.all([
    deps.store.outboxBacklog(stuckAfterMs),
    deps.store.parkedRows(options.parkedLimit ?? 20),
    options.groups ? Promise.resolve(options.groups) : deps.store.knownGroups(),
    deps.store.openDeadLetters(),
    deps.store.recentAlarms(options.alarmsSinceMs ?? 86_400_000, 100),
    deps.store.lastRuns(3),
    deps.store.heldRuns(options.heldRunsLimit ?? 20),
  ]);
  const groups = [...new Set(known)].sort();
  const degraded = deps.degrade
    ? { switches: (await deps.degrade.switches()).filter((x) => x.on), diverts: await deps.degrade.divertRules() }
    : { switches: [], diverts: [] };
  const confirmations = deps.receipts ? await confirmationStatus({ store: deps.receipts }, options.confirmations) : [];
  const [throughput, stored] = await Promise.all([deps.store.throughput(windowMs, groups), deps.store.storedOffsets(groups)]);
  const warnings: string[] = [];
  let walSlots: ReplicationSlotView[] = [];
  if (deps.walSlots) {
    try {
      walSlots = await deps.walSlots();
    } catch (error) {
      warnings.push(`replication slots not read: ${(error as Error).message}`);
    }
  }
  for (const slot of walSlots) {
    if (slot.walStatus === 'lost')
      warnings.push(
        `replication slot ${slot.slot} lost the WAL it needs: create it again with 'zeroloss relay --mode wal --create-slot': the outbox is the safe point (docs/wal-relay.md)`,
      );
    else if (!slot.active)
      warnings.push(
        `no relay reads replication slot ${slot.slot}; it holds back ${mib(slot.retainedBytes)} of WAL (drop it with 'zeroloss relay --mode wal --drop-slot --slot ${slot.slot}' if it is abandoned)`,
      );
  }
  // Insert-only rows go by a slot only (the polling relay refuses such an outbox): with no slot read, they wait.
  if (
    outbox.insertOnly &&
    deps.walSlots &&
    !warnings.some((w) => w.startsWith('replication slots not read')) &&
    !walSlots.some((x) => x.active)
  ) {
    warnings.push(
      `the outbox is insert-only: its rows are sent only by a WAL relay reading its slot, and no relay reads a slot now${outbox.pending > 0 ? ` (${outbox.pending} pending)` : ''}; start 'zeroloss relay --mode wal' (with --create-slot if the slot is gone: it hands the waiting rows to the polling path)`,
    );
  }
  const unavailableTopics = await findUnavailableTopics(byTopic, deps.broker);
  for (const t of unavailableTopics) {
    warnings.push(
      t.reason === 'missing'
        ? `topic ${t.topic} does not exist on the broker; ${t.waiting} unsent rows wait for it. Create it: npx zeroloss topics ensure ${t.topic} --partitions <n> --kafka <brokers>`
        : `the broker refuses the relay access to topic ${t.topic}; ${t.waiting} unsent rows wait for it until the ACL allows writing`,
    );
  }
  const ends = new Map<string, Map<number, bigint>>();
  const endsOf = async (topic: string) => {
    let e = ends.get(topic);
    if (!e) {
      const marks = deps.broker ? await deps.broker.watermarks(topic) : undefined;
      if (deps.broker && !marks) warnings.push(`topic ${topic} does not exist on the broker`);
      e = new Map((marks ?? []).map((m) => [m.partition, m.high]));
      ends.set(topic, e);
    }
    return e;
  };

  const groupStatus: GroupStatus[] = [];
  for (const group of groups) {
    const committed = new Map<string, { topic: string; partition: number; offset: bigint }>();
    const add = (c: { topic: string; partition: number; offset: bigint }) => {
      const k = partKey(c.topic, c.partition);
      const cur = committed.get(k);
      if (!cur || c.offset > cur.offset) committed.set(k, c);
    };
    if (deps.broker) for (const c of await deps.broker.committedOffsets(group)) add(c);
    for (const s of stored.filter((x) => x.groupId === group)) add(s);
    const rates = throughput.filter((t) => t.groupId === group);
    const topics = [...new Set([...[...committed.values()].map((c) => c.topic), ...rates.map((r) => r.topic)])].sort();
    const partitions: PartitionStatus[] = [];
    for (const topic of topics) {
      const end = await endsOf(topic);
      const parts = new Set([...end.keys(), ...[...committed.values()].filter((c) => c.topic === topic).map((c) => c.partition)]);
      for (const partition of [...parts].sort((a, b) => a - b)) {
        const c = committed.get(partKey(topic, partition));
        const high = end.get(partition) ?? 0n;
        const applied = rates.find((r) => r.topic === topic && r.partition === partition)?.applied ?? 0;
        partitions.push({
          topic,
          partition,
          committed: c ? c.offset.toString() : null,
          end: high.toString(),
          lag: c ? (high > c.offset ? high - c.offset : 0n).toString() : null,
          appliedPerSecond: round(applied / (windowMs / 1000)),
        });
      }
    }
    if (partitions.length === 0)
      warnings.push(`group ${group} has no committed offsets and applied nothing in the last ${windowMs / 1000} s`);
    groupStatus.push({
      group,
      partitions,
      lag: partitions.reduce((n, p) => n + BigInt(p.lag ?? '0'), 0n).toString(),
      appliedPerSecond: round(partitions.reduce((n, p) => n + p.appliedPerSecond, 0)),
      openDeadLetters: openDead.find((d) => d.groupId === group)?.open ?? 0,
    });
  }

  return {
    at: new Date().toISOString(),
    outbox,
    sources,
    unavailableTopics,
    parked: parkedRows.map((r) => ({
      messageId: r.messageId,
      topic: r.topic,
      type: r.type,
      attempts: r.attempts,
      lastError: r.lastError,
      parkedSince: r.modifiedAt.toISOString(),
    })),
    groups: groupStatus,
    alarms,
    lastReconcile,
    heldRuns,
    confirmations,
    degraded,
    sequenceGaps: (await deps.gaps?.gapSummary(options.groups)) ?? [],
    walSlots,
    warnings,
  };
}

/**
 * Topics with unsent rows that the broker does not list (when a broker is given), or whose rows the relay
 * last failed as missing or refused. A topic the relay found missing that exists by now is left out: its
 * rows go at their next attempt.
 */
async function findUnavailableTopics(byTopic: TopicBacklog[], broker: BrokerInspector | undefined): Promise<UnavailableTopic[]> {
  if (byTopic.length === 0) return [];
  const listed = broker ? new Set(await broker.listTopics()) : undefined;
  const found: UnavailableTopic[] = [];
  for (const t of byTopic) {
    const refused = t.topicUnavailable > 0 && t.topicError?.includes('TOPIC_AUTHORIZATION_FAILED') === true;
    const missing = listed ? !listed.has(t.topic) : t.topicUnavailable > 0 && !refused;
    if (missing || refused) {
      found.push({ topic: t.topic, reason: missing ? 'missing' : 'unauthorized', waiting: t.unsent, lastError: t.topicError });
    }
  }
  return found;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** Bytes as MiB with one decimal, as status prints WAL sizes. */
export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
