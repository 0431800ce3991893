import { ZerolossError, errorSummary } from '../core/errors.ts';
import { validateTopic } from '../core/message.ts';
import type { BrokerInspector, CommittedOffset, PartitionRange, TopicAdmin } from '../ports/broker-inspector.ts';
import type { DivertRule, DivertStore } from '../ports/operations-store.ts';
import type { OutgoingRecord } from '../core/envelope.ts';
import type { Publisher } from '../ports/transport.ts';
import { maxBig } from './broker-window.ts';
import { type Actor, actorOf } from './intervention.ts';

/**
 * Backlog tools (O4). Each changes how messages are spread, never what a consumer applies: every copy
 * keeps its `zl-id`, so a consumer group's inbox still applies each message once, whichever copy it sees.
 */

/** Header on a forwarded copy: where the original sits (`topic/partition/offset`). */
export const FORWARDED_HEADER = 'zl-forwarded-from';

/**
 * Raises a topic's partition count so more consumers of a group can work at once. Keys hash over the new
 * count from then on: a key's new messages may land on another partition than its old ones, so per-key
 * order holds again only once the old partitions are drained.
 */
export async function raisePartitions(
  deps: { broker: BrokerInspector; admin: TopicAdmin; audit?: DivertStore['audit'] },
  topic: string,
  total: number,
  who: Actor = {},
): Promise<{ topic: string; before: number; after: number }> {
  const marks = await deps.broker.watermarks(topic);
  if (!marks) throw new ZerolossError('ZL_UNKNOWN_TOPIC', `topic ${topic} does not exist`);
  if (total <= marks.length) {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      `topic ${topic} has ${marks.length} partitions; the new count must be larger (got ${total})`,
    );
  }
  await deps.admin.createPartitions(topic, total);
  await deps.audit?.({
    actor: actorOf(who),
    action: 'backlog.partitions',
    subject: `topic:${topic}`,
    reason: who.reason,
    details: { before: marks.length, after: total },
  });
  return { topic, before: marks.length, after: total };
}

export interface ForwardOptions {
  from: string;
  to: string;
  /** The group whose backlog moves: forwarding starts at its committed offsets (the low watermark where none). */
  group: string;
  /** Partitions of `to` when it has to be created. */
  partitions: number;
  /**
   * After copying, move the group's committed offsets on `from` to where the copy ended, so it does not work
   * the same backlog twice. The broker allows this only while the group has no live members.
   */
  advance?: boolean;
  batchSize?: number;
}

export interface ForwardResult {
  from: string;
  to: string;
  created: boolean;
  forwarded: number;
  ranges: Array<{ partition: number; from: string; to: string }>;
  advanced: boolean;
  error: string | undefined;
}

/**
 * Copies a group's backlog — the records of `from` after its committed offsets, up to the end at the start
 * of the call — to `to` (usually a new topic with more partitions), with the same key, headers and bytes
 * plus `zl-forwarded-from`. Run the group's consumers on both topics: more partitions drain the backlog in
 * parallel, and the inbox makes whichever copy comes second a skipped duplicate. Per-key order holds within
 * each topic, not between the copies and new records on `from`; stop or divert the producers first where
 * that order matters.
 */
export async function forwardBacklog(
  deps: { broker: BrokerInspector; admin: TopicAdmin; publisher: Publisher; audit?: DivertStore['audit'] },
  options: ForwardOptions,
  who: Actor = {},
): Promise<ForwardResult> {
  validateTopic(options.to);
  if (options.from === options.to) throw new ZerolossError('ZL_INVALID_CONFIG', 'forward needs two different topics');
  const marks = await deps.broker.watermarks(options.from);
  if (!marks) throw new ZerolossError('ZL_UNKNOWN_TOPIC', `topic ${options.from} does not exist`);
  const target = await deps.admin.ensureTopic(options.to, options.partitions);
  const committed = new Map(
    (await deps.broker.committedOffsets(options.group)).filter((c) => c.topic === options.from).map((c) => [c.partition, c.offset]),
  );
  const ranges: PartitionRange[] = marks
    .map((m) => {
      const start = committed.get(m.partition) ?? m.low;
      return { topic: options.from, partition: m.partition, from: maxBig(start, m.low), to: m.high };
    })
    .filter((r) => r.from < r.to);

  const batchSize = options.batchSize ?? 500;
  let forwarded = 0;
  let error: string | undefined;
  let batch: OutgoingRecord[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const outcomes = await deps.publisher.publish(batch);
    const failed = outcomes.find((o) => !o.ok);
    if (failed && !failed.ok) throw failed.error;
    forwarded += batch.length;
    batch = [];
  };
  try {
    for await (const r of deps.broker.read(ranges)) {
      batch.push({
        topic: options.to,
        key: r.key,
        value: r.value,
        headers: { ...r.headers, [FORWARDED_HEADER]: `${r.topic}/${r.partition}/${r.offset}` },
      });
      if (batch.length >= batchSize) await flush();
    }
    await flush();
  } catch (e) {
    error = `forwarding stopped after ${forwarded} record(s): ${errorSummary(e)}`;
  }

  let advanced = false;
  if (options.advance && error === undefined && ranges.length > 0) {
    const offsets: CommittedOffset[] = ranges.map((r) => ({ topic: options.from, partition: r.partition, offset: r.to }));
    try {
      await deps.admin.alterGroupOffsets(options.group, offsets);
      advanced = true;
    } catch (e) {
      error = `copied, but the group's offsets on ${options.from} were not moved (stop its consumers first): ${errorSummary(e)}`;
    }
  }
  await deps.audit?.({
    actor: actorOf(who),
    action: 'backlog.forward',
    subject: `topic:${options.from}`,
    reason: who.reason,
    details: { to: options.to, group: options.group, forwarded, advanced, error },
  });
  return {
    from: options.from,
    to: options.to,
    created: target.created,
    forwarded,
    ranges: ranges.map((r) => ({ partition: r.partition, from: r.from.toString(), to: r.to.toString() })),
    advanced,
    error,
  };
}

/**
 * Diverts messages of the chosen types (or '*' for all) enqueued for `topic` to `target` from now on: the
 * rule is applied inside the enqueue transaction, so the outbox row, the relay, trace and reconcile all
 * name the target. With `moveUnsent`, the backlog still in the outbox follows too. Sequence numbers stay
 * per (producer, key): consumers of `topic` see a diverted key's numbers jump and report gaps (C9) that
 * reconciliation, which works by id, shows are not losses.
 */
export async function divert(
  deps: { store: DivertStore; admin?: TopicAdmin; broker?: BrokerInspector },
  options: { topic: string; types: string[]; target: string; moveUnsent?: boolean },
  who: Actor = {},
): Promise<{ rules: DivertRule[]; createdTarget: boolean; moved: number }> {
  validateTopic(options.topic);
  validateTopic(options.target);
  if (options.types.length === 0) throw new ZerolossError('ZL_INVALID_CONFIG', 'name at least one type (or * for all)');
  if (options.topic === options.target) throw new ZerolossError('ZL_INVALID_CONFIG', 'a topic cannot be diverted to itself');
  let createdTarget = false;
  if (deps.admin && deps.broker) {
    const partitions = (await deps.broker.watermarks(options.topic))?.length ?? 1;
    createdTarget = (await deps.admin.ensureTopic(options.target, partitions)).created;
  }
  const actor = actorOf(who);
  await deps.store.setDivert(options.topic, options.types, options.target, actor, who.reason);
  const moved = options.moveUnsent ? await deps.store.divertUnsent(options.topic, options.types, options.target) : 0;
  await deps.store.audit({
    actor,
    action: 'backlog.divert',
    subject: `topic:${options.topic}`,
    reason: who.reason,
    details: { types: options.types, target: options.target, moved },
  });
  return { rules: (await deps.store.divertRules()).filter((r) => r.topic === options.topic), createdTarget, moved };
}

/** Ends diverts: new messages of those types go to `topic` again. Rows already diverted stay where they are. */
export async function undivert(deps: { store: DivertStore }, topic: string, types: string[], who: Actor = {}): Promise<string[]> {
  const removed = await deps.store.removeDivert(topic, types);
  await deps.store.audit({
    actor: actorOf(who),
    action: 'backlog.undivert',
    subject: `topic:${topic}`,
    reason: who.reason,
    details: { types: removed },
  });
  return removed;
}
