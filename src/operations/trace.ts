import { HEADER } from '../core/envelope.ts';
import type { BrokerInspector, ReadStats } from '../ports/broker-inspector.ts';
import type { AuditEntry, DeadLetterHit, InboxHit, OutboxRowView, TraceStore, Transition } from '../ports/operations-store.ts';
import type { SourceMessageLookup } from '../ports/parked-source.ts';
import type { ReceiptStore } from '../ports/receipt-store.ts';
import { type Confirmation, confirmationOf } from './confirmations.ts';
import { readWindow, retryTopicsOf } from './broker-window.ts';

export interface TraceOptions {
  /** Also report these groups (a group that never saw the message has no inbox row to find it by). */
  groups?: string[];
  /** Look for copies on the broker (main, retry and dead-letter topics). Default true when a broker is given. */
  scanBroker?: boolean;
  /** Broker timestamps are the producer's clock: scan this much around the known times. Default 60 s. */
  slackMs?: number;
  /** Retry and dead-letter topics are scanned from the message's creation for at most this long. Default 15 min. */
  maxScanMs?: number;
}

export type TraceStage = 'outbox' | 'relay' | 'broker' | 'consumer' | 'complete';

export interface BrokerCopy {
  topic: string;
  kind: 'main' | 'retry' | 'dlq';
  partition: number;
  offset: string;
  timestamp: string;
}

export interface GroupTrail {
  group: string;
  status: 'applied' | 'dead-lettered' | 'discarded' | 'replayed' | 'not-applied';
  applied: (Omit<InboxHit, 'offset' | 'groupId' | 'messageId'> & { offset: string }) | undefined;
  deadLetters: Array<Omit<DeadLetterHit, 'offset' | 'groupId' | 'messageId'> & { offset: string }>;
  /** For a group without an effect: its committed offset on the message's partition, when known. */
  committed: string | undefined;
}

export interface MessageTrace {
  messageId: string;
  /** Set when the message is a row of a state-column source: `outbox` then shows that row. */
  source: string | undefined;
  outbox: (Omit<OutboxRowView, 'sentOffset'> & { sentOffset: string | null; stateName: string }) | undefined;
  transitions: Transition[];
  audit: AuditEntry[];
  broker:
    | {
        /** The position the relay recorded, read back: is the message there? */
        recorded:
          | { topic: string; partition: number; offset: string; check: 'found' | 'other-message' | 'deleted' | 'beyond-end' }
          | undefined;
        copies: BrokerCopy[];
        incomplete: ReadStats['incomplete'];
      }
    | undefined;
  groups: GroupTrail[];
  /**
   * Two-way confirmation: the groups whose receipts this producer stored, and the expected ones (named with
   * `groups`, or that confirmed its topic before) without one. Undefined without a receipt store.
   */
  confirmations: Confirmation | undefined;
  /** The message's life in time order. */
  steps: Array<{ at: string; stage: TraceStage; text: string }>;
  /** Where the trail ends, and why. */
  stop: { stage: TraceStage; reason: string };
}

const STATE_NAMES = ['pending', 'sent', 'failed', 'parked'] as const;

/**
 * Where is message X (O3): its outbox row and every state change, its position and copies on the broker
 * (main, retry and dead-letter topics), each consumer group's inbox record or dead letter, and where the
 * trail stops.
 */
export async function trace(
  deps: {
    store: TraceStore;
    broker?: BrokerInspector;
    sources?: readonly SourceMessageLookup[];
    receipts?: Pick<ReceiptStore, 'confirmations'>;
  },
  messageId: string,
  options: TraceOptions = {},
): Promise<MessageTrace> {
  const slack = options.slackMs ?? 60_000;
  const [found, transitions, audit, inbox, dead] = await Promise.all([
    outboxOrSourceRow(deps, messageId),
    deps.store.transitions(messageId),
    deps.store.auditForMessage(messageId),
    deps.store.inboxByMessageIds([messageId]),
    deps.store.deadLettersByMessageIds([messageId]),
  ]);
  const row = found?.row;
  const topic = row?.topic || (inbox[0]?.topic ?? dead[0]?.topic);
  const now = Date.now();

  let broker: MessageTrace['broker'];
  if (deps.broker && options.scanBroker !== false && topic) {
    const stats: ReadStats = { records: 0, incomplete: [] };
    const recordedAt =
      row?.sentPartition !== null && row?.sentPartition !== undefined && row.sentOffset !== null
        ? { partition: row.sentPartition, offset: row.sentOffset }
        : inbox[0]
          ? { partition: inbox[0].partition, offset: inbox[0].offset }
          : undefined;
    const recorded = recordedAt ? await checkPosition(deps.broker, topic, recordedAt.partition, recordedAt.offset, messageId) : undefined;
    const copies: BrokerCopy[] = [];
    if (row) {
      const created = row.createdAt.getTime();
      const lastKnown = Math.max(
        row.sentAt?.getTime() ?? 0,
        row.leaseUntil?.getTime() ?? 0,
        ...transitions.map((t) => t.at.getTime()),
        ...audit.map((a) => a.at.getTime()),
        row.state === 1 ? 0 : now,
      );
      const scanEnd = Math.min(now, created + (options.maxScanMs ?? 900_000));
      const all = await deps.broker.listTopics();
      const targets: Array<{ topic: string; kind: BrokerCopy['kind']; to: number }> = [
        { topic, kind: 'main', to: lastKnown + slack },
        ...retryTopicsOf(topic, all).map((t) => ({ topic: t, kind: 'retry' as const, to: scanEnd + slack })),
        ...(all.includes(`${topic}.dlq`) ? [{ topic: `${topic}.dlq`, kind: 'dlq' as const, to: scanEnd + slack }] : []),
      ];
      for (const target of targets) {
        for await (const r of readWindow(deps.broker, target.topic, created - slack, target.to, stats)) {
          if (r.headers[HEADER.id] !== messageId) continue;
          copies.push({
            topic: r.topic,
            kind: target.kind,
            partition: r.partition,
            offset: r.offset.toString(),
            timestamp: new Date(r.timestamp).toISOString(),
          });
        }
      }
    }
    broker = {
      recorded:
        recorded && recordedAt
          ? { topic, partition: recordedAt.partition, offset: recordedAt.offset.toString(), check: recorded }
          : undefined,
      copies,
      incomplete: stats.incomplete,
    };
  }

  const groups = await groupTrails(deps.broker, options.groups ?? [], inbox, dead, topic, broker?.copies ?? []);
  const confirmations = deps.receipts
    ? confirmationOf(messageId, (await deps.receipts.confirmations([messageId]))[0], options.groups ?? [])
    : undefined;
  const outbox = row
    ? { ...row, sentOffset: row.sentOffset?.toString() ?? null, stateName: STATE_NAMES[row.state] ?? String(row.state) }
    : undefined;
  return {
    messageId,
    source: found?.source,
    outbox,
    transitions,
    audit,
    broker,
    groups,
    confirmations,
    steps: steps(row, transitions, audit, broker, inbox, dead, found?.source, confirmations),
    stop: stopOf(row, audit, broker, groups, confirmations),
  };
}

/** The outbox row of the message, else the row of the first source that holds it. */
async function outboxOrSourceRow(
  deps: { store: TraceStore; sources?: readonly SourceMessageLookup[] },
  messageId: string,
): Promise<{ row: OutboxRowView; source: string | undefined } | undefined> {
  const row = await deps.store.outboxRow(messageId);
  if (row) return { row, source: undefined };
  for (const source of deps.sources ?? []) {
    const found = await source.messageRow(messageId);
    if (found) return { row: found, source: source.name };
  }
  return undefined;
}

async function checkPosition(
  broker: BrokerInspector,
  topic: string,
  partition: number,
  offset: bigint,
  messageId: string,
): Promise<'found' | 'other-message' | 'deleted' | 'beyond-end'> {
  const marks = (await broker.watermarks(topic))?.find((m) => m.partition === partition);
  if (!marks || offset < marks.low) return 'deleted';
  if (offset >= marks.high) return 'beyond-end';
  for await (const r of broker.read([{ topic, partition, from: offset, to: offset + 1n }])) {
    return r.headers[HEADER.id] === messageId ? 'found' : 'other-message';
  }
  return 'deleted';
}

async function groupTrails(
  broker: BrokerInspector | undefined,
  named: string[],
  inbox: InboxHit[],
  dead: DeadLetterHit[],
  topic: string | undefined,
  copies: BrokerCopy[],
): Promise<GroupTrail[]> {
  const names = [...new Set([...inbox.map((i) => i.groupId), ...dead.map((d) => d.groupId), ...named])].sort();
  const trails: GroupTrail[] = [];
  for (const group of names) {
    const applied = inbox.find((i) => i.groupId === group);
    const letters = dead.filter((d) => d.groupId === group);
    const latest = letters[letters.length - 1];
    const status: GroupTrail['status'] = applied
      ? 'applied'
      : latest?.status === 'dead'
        ? 'dead-lettered'
        : (latest?.status ?? 'not-applied');
    let committed: string | undefined;
    const main = copies.find((c) => c.kind === 'main');
    if (!applied && broker && topic && main) {
      const c = (await broker.committedOffsets(group)).find((x) => x.topic === topic && x.partition === main.partition);
      committed = c?.offset.toString();
    }
    trails.push({
      group,
      status,
      applied: applied
        ? {
            idempotencyKey: applied.idempotencyKey,
            topic: applied.topic,
            partition: applied.partition,
            offset: applied.offset.toString(),
            processedAt: applied.processedAt,
          }
        : undefined,
      deadLetters: letters.map(({ offset, groupId: _g, messageId: _m, ...rest }) => ({ ...rest, offset: offset.toString() })),
      committed,
    });
  }
  return trails;
}

function steps(
  row: OutboxRowView | undefined,
  transitions: Transition[],
  audit: AuditEntry[],
  broker: MessageTrace['broker'],
  inbox: InboxHit[],
  dead: DeadLetterHit[],
  source: string | undefined,
  confirmations: Confirmation | undefined,
): MessageTrace['steps'] {
  const out: Array<{ at: Date; stage: TraceStage; text: string }> = [];
  const name = (s: number) => STATE_NAMES[s] ?? String(s);
  const where = source ? `source ${source} (row ${row?.seqId})` : 'the outbox';
  if (row)
    out.push({ at: row.createdAt, stage: 'outbox', text: `committed to ${where}: topic ${row.topic}, key ${row.key}, type ${row.type}` });
  for (const t of transitions) {
    const what = t.from === 1 && t.to === 1 ? 're-published (resend)' : `${name(t.from)} → ${name(t.to)}`;
    out.push({ at: t.at, stage: 'relay', text: `${what}, attempt ${t.attempt}, by ${t.actor}${t.error ? `: ${t.error}` : ''}` });
  }
  for (const a of audit) out.push({ at: a.at, stage: 'outbox', text: `${a.action} by ${a.actor}${a.reason ? ` (${a.reason})` : ''}` });
  for (const c of broker?.copies ?? []) {
    out.push({ at: new Date(c.timestamp), stage: 'broker', text: `on ${c.topic} partition ${c.partition} offset ${c.offset} (${c.kind})` });
  }
  for (const d of dead) {
    out.push({
      at: d.createdAt,
      stage: 'consumer',
      text: `dead-lettered by group ${d.groupId} after ${d.attempts} attempt(s): ${d.errorCode}: ${d.error} [dead letter ${d.id}, ${d.status}${d.resolvedBy ? ` by ${d.resolvedBy}` : ''}]`,
    });
  }
  for (const i of inbox) {
    out.push({
      at: i.processedAt,
      stage: 'consumer',
      text: `applied by group ${i.groupId} from ${i.topic} partition ${i.partition} offset ${i.offset}`,
    });
  }
  for (const a of confirmations?.applied ?? []) {
    out.push({ at: new Date(a.appliedAt), stage: 'consumer', text: `receipt from group ${a.group}: applied (stored ${a.receivedAt})` });
  }
  return out.sort((a, b) => a.at.getTime() - b.at.getTime()).map((s) => ({ ...s, at: s.at.toISOString() }));
}

function stopOf(
  row: OutboxRowView | undefined,
  audit: AuditEntry[],
  broker: MessageTrace['broker'],
  groups: GroupTrail[],
  confirmations: Confirmation | undefined,
): MessageTrace['stop'] {
  const discarded = audit.find((a) => a.action === 'outbox.discard');
  if (!row && discarded) {
    return {
      stage: 'outbox',
      reason: `discarded from the outbox by ${discarded.actor} at ${discarded.at.toISOString()}: ${discarded.reason ?? ''}`,
    };
  }
  if (!row && groups.length === 0 && !confirmations?.applied.length) {
    return { stage: 'outbox', reason: 'no trace: never committed in this schema, or removed by retention' };
  }
  if (row && row.state !== 1) {
    const copies = broker?.copies.filter((c) => c.kind === 'main').length ?? 0;
    if (copies > 0) {
      return { stage: 'relay', reason: 'the broker holds it but the ack was never recorded: reconcile marks it sent without a resend' };
    }
    if (row.state === 3) {
      return {
        stage: 'relay',
        reason: `parked after ${row.attempts} attempt(s): ${row.lastError ?? 'no error recorded'} — release or discard it (zeroloss parked)`,
      };
    }
    if (row.inStream) {
      return {
        stage: 'relay',
        reason:
          'committed, in the WAL stream: no relay has recorded it sent yet (the relay reading the slot sends it in commit order; `zeroloss status` shows the slot and its lag)',
      };
    }
    const due = row.nextAttemptAt.toISOString();
    return {
      stage: 'relay',
      reason: `committed, not sent yet: ${STATE_NAMES[row.state]}, ${row.attempts} attempt(s)${row.lastError ? `, last error: ${row.lastError}` : ''}; next attempt at ${due}`,
    };
  }
  if (broker?.recorded?.check === 'deleted' && (broker.copies.length === 0 || broker.copies.every((c) => c.kind !== 'main'))) {
    return { stage: 'broker', reason: 'sent, but the broker no longer holds it (retention or deleted records): resend it from the outbox' };
  }
  const dead = groups.filter((g) => g.status === 'dead-lettered');
  if (dead.length > 0) {
    const d = dead[0]?.deadLetters.at(-1);
    return { stage: 'consumer', reason: `dead-lettered by ${dead.map((g) => g.group).join(', ')}: ${d?.errorCode}: ${d?.error}` };
  }
  const waiting = groups.filter((g) => g.status !== 'applied' && g.status !== 'discarded');
  // The producer's own database has no consumer inbox to read (separate services): the receipts speak for them.
  if (groups.length === 0 && confirmations && confirmations.applied.length + confirmations.notConfirmed.length > 0) {
    const confirmed = confirmations.applied.map((a) => a.group).join(', ');
    return confirmations.notConfirmed.length > 0
      ? {
          stage: 'consumer',
          reason: `not confirmed by ${confirmations.notConfirmed.join(', ')}${confirmed ? `; confirmed by ${confirmed}` : ''}`,
        }
      : { stage: 'complete', reason: `confirmed by ${confirmed} (receipts)` };
  }
  if (groups.length === 0) return { stage: 'broker', reason: 'on the broker; no consumer group has applied or dead-lettered it yet' };
  if (waiting.length > 0) {
    return {
      stage: 'consumer',
      reason: `not applied by ${waiting.map((g) => `${g.group} (${g.status}${g.committed ? `, committed offset ${g.committed}` : ''})`).join(', ')}`,
    };
  }
  return {
    stage: 'complete',
    reason: `applied by ${groups
      .filter((g) => g.status === 'applied')
      .map((g) => g.group)
      .join(', ')}`,
  };
}
