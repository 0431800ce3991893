import { ZerolossError, errorSummary } from '../core/errors.ts';
import { validateTopic } from '../core/message.ts';
import type { BrokerInspector, CommittedOffset, PartitionRange, TopicAdmin } from '../ports/broker-inspector.ts';
import type { ForwardLog, ForwardRange } from '../ports/backlog-store.ts';
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
  /** The run's id in the forward record (`backlog forwards`); undefined without a record. */
  run: string | undefined;
  from: string;
  to: string;
  created: boolean;
  forwarded: number;
  ranges: ForwardRange[];
  advanced: boolean;
  error: string | undefined;
}

interface ForwardDeps {
  broker: BrokerInspector;
  admin: TopicAdmin;
  publisher: Publisher;
  audit?: DivertStore['audit'];
  /** Where each run records what it copies, before copying (so a run that dies midway is on record too). */
  log?: ForwardLog;
}

/**
 * Copies a group's backlog — the records of `from` after its committed offsets, up to the end at the start
 * of the call — to `to` (usually a new topic with more partitions), with the same key, headers and bytes
 * plus `zl-forwarded-from`. Run the group's consumers on both topics: more partitions drain the backlog in
 * parallel, and the inbox makes whichever copy comes second a skipped duplicate. Per-key order holds within
 * each topic, not between the copies and new records on `from`; stop or divert the producers first where
 * that order matters. With a `log`, the run is recorded (ranges, target, count), so `forwardAgain` can copy
 * the same ranges again if the target loses them.
 */
export async function forwardBacklog(deps: ForwardDeps, options: ForwardOptions, who: Actor = {}): Promise<ForwardResult> {
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

  const run = await deps.log?.startForward({
    from: options.from,
    to: options.to,
    group: options.group,
    toPartitions: options.partitions,
    ranges: ranges.map(rangeText),
    planned: Number(ranges.reduce((n, r) => n + (r.to - r.from), 0n)),
    againOf: null,
    actor: actorOf(who),
    reason: who.reason ?? null,
  });
  let { forwarded, error } = await copyRanges(deps.broker, deps.publisher, ranges, options.to, options.batchSize ?? 500);

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
  if (run !== undefined) await deps.log?.finishForward(run, forwarded, error);
  await deps.audit?.({
    actor: actorOf(who),
    action: 'backlog.forward',
    subject: `topic:${options.from}`,
    reason: who.reason,
    details: { run, to: options.to, group: options.group, forwarded, advanced, error, ranges: ranges.map(rangeText) },
  });
  return {
    run,
    from: options.from,
    to: options.to,
    created: target.created,
    forwarded,
    ranges: ranges.map(rangeText),
    advanced,
    error,
  };
}

export interface ForwardAgainResult extends ForwardResult {
  againOf: string;
  /** Records of the recorded ranges the source no longer holds (retention deleted them): resend those from the outbox. */
  goneAtSource: number;
}

/**
 * Forwards a recorded run's ranges again — to its target, or to `to` — for when the target lost what was
 * copied (retention, a deleted topic, a broken disk). The consumers' inboxes make every record that was
 * applied before a skipped duplicate, so repeating a range is harmless. The new run is recorded too, naming
 * the one it repeats. Records the source itself no longer holds are counted in `goneAtSource`: those can
 * only come back from the outbox (`zeroloss resend`).
 */
export async function forwardAgain(
  deps: ForwardDeps & { log: ForwardLog },
  runId: string,
  options: { to?: string; batchSize?: number } = {},
  who: Actor = {},
): Promise<ForwardAgainResult> {
  const earlier = await deps.log.forwardRun(runId);
  if (!earlier) throw new ZerolossError('ZL_INVALID_CONFIG', `no forward run ${runId} on record (see: zeroloss backlog forwards)`);
  const to = options.to ?? earlier.to;
  validateTopic(to);
  if (to === earlier.from) throw new ZerolossError('ZL_INVALID_CONFIG', 'forward needs two different topics');
  const marks = await deps.broker.watermarks(earlier.from);
  if (!marks) throw new ZerolossError('ZL_UNKNOWN_TOPIC', `topic ${earlier.from} does not exist`);
  const target = await deps.admin.ensureTopic(to, earlier.toPartitions);
  const low = new Map(marks.map((m) => [m.partition, m.low]));
  let goneAtSource = 0n;
  const ranges: PartitionRange[] = [];
  for (const r of earlier.ranges) {
    const from = BigInt(r.from);
    const end = BigInt(r.to);
    const start = maxBig(from, low.get(r.partition) ?? end);
    goneAtSource += (start < end ? start : end) - from;
    if (start < end) ranges.push({ topic: earlier.from, partition: r.partition, from: start, to: end });
  }
  const run = await deps.log.startForward({
    from: earlier.from,
    to,
    group: earlier.group,
    toPartitions: earlier.toPartitions,
    ranges: ranges.map(rangeText),
    planned: Number(ranges.reduce((n, r) => n + (r.to - r.from), 0n)),
    againOf: earlier.id,
    actor: actorOf(who),
    reason: who.reason ?? null,
  });
  const { forwarded, error } = await copyRanges(deps.broker, deps.publisher, ranges, to, options.batchSize ?? 500);
  await deps.log.finishForward(run, forwarded, error);
  await deps.audit?.({
    actor: actorOf(who),
    action: 'backlog.forward',
    subject: `topic:${earlier.from}`,
    reason: who.reason,
    details: { run, againOf: earlier.id, to, group: earlier.group, forwarded, goneAtSource: Number(goneAtSource), error },
  });
  return {
    run,
    againOf: earlier.id,
    from: earlier.from,
    to,
    created: target.created,
    forwarded,
    ranges: ranges.map(rangeText),
    advanced: false,
    error,
    goneAtSource: Number(goneAtSource),
  };
}

/** Copies the records of `ranges` to topic `to`, `batchSize` at a time; a failure stops the copy and is returned. */
async function copyRanges(
  broker: BrokerInspector,
  publisher: Publisher,
  ranges: PartitionRange[],
  to: string,
  batchSize: number,
): Promise<{ forwarded: number; error: string | undefined }> {
  let forwarded = 0;
  let batch: OutgoingRecord[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const outcomes = await publisher.publish(batch);
    const failed = outcomes.find((o) => !o.ok);
    if (failed && !failed.ok) throw failed.error;
    forwarded += batch.length;
    batch = [];
  };
  try {
    for await (const r of broker.read(ranges)) {
      batch.push({
        topic: to,
        key: r.key,
        value: r.value,
        headers: { ...r.headers, [FORWARDED_HEADER]: `${r.topic}/${r.partition}/${r.offset}` },
      });
      if (batch.length >= batchSize) await flush();
    }
    await flush();
    return { forwarded, error: undefined };
  } catch (e) {
    return { forwarded, error: `forwarding stopped after ${forwarded} record(s): ${errorSummary(e)}` };
  }
}

function rangeText(r: PartitionRange): ForwardRange {
  return { partition: r.partition, from: r.from.toString(), to: r.to.toString() };
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
