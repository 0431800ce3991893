import type { Redis } from 'ioredis';
import { readPartitionCounts } from './redis-streams-admin.ts';
import { redisStreamsKeys } from './redis-streams-keys.ts';
import type { RedisFinding } from './redis-durability.ts';
import { replyFields } from './redis-reply-fields.ts';

/**
 * The stream part of `zeroloss doctor --redis`: entries of the transport's streams that were deleted
 * (trimmed or XDEL) before every consumer group acknowledged them.
 */

export interface RedisStreamReport {
  key: string;
  length: number;
  entriesAdded: number;
  /** The highest entry id known to be deleted (trimmed or XDEL), `0-0` when none. */
  deletedUpTo: string;
  groups: Array<{ name: string; pending: number; lastDeliveredId: string; entriesRead: number | null; lag: number | null }>;
}

/** Stream ids compared as (milliseconds, sequence). */
function compareIds(a: string, b: string): number {
  const [am = 0n, as = 0n] = a.split('-').map(BigInt);
  const [bm = 0n, bs = 0n] = b.split('-').map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  return as === bs ? 0 : as < bs ? -1 : 1;
}

const numberOrNull = (v: unknown) => (v === null || v === undefined ? null : Number(v));

async function topicsUnder(redis: Redis, keys: ReturnType<typeof redisStreamsKeys>): Promise<string[]> {
  const marker = keys.topic('');
  const pattern = `${marker.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`;
  const topics: string[] = [];
  for await (const batch of redis.scanStream({ match: pattern, count: 500 }) as AsyncIterable<string[]>) {
    for (const key of batch) topics.push(key.slice(marker.length));
  }
  return topics.sort();
}

/**
 * A deleted entry (XTRIM MAXLEN/MINID, XADD with a limit, XDEL) is a lost message when some group had not
 * acknowledged it: it lay after the group's last-delivered id, or it is still in the group's pending list.
 * Entries every group acknowledged may go: that is retention, but trace and reconcile cannot read them.
 */
export async function inspectStreams(
  redis: Redis,
  prefix: string,
  named: string[] | undefined,
  findings: RedisFinding[],
): Promise<RedisStreamReport[]> {
  const keys = redisStreamsKeys(prefix);
  const topics = named ?? (await topicsUnder(redis, keys));
  const counts = await readPartitionCounts(redis, keys, topics);
  const reports: RedisStreamReport[] = [];
  for (const topic of topics) {
    const partitions = counts.get(topic);
    if (partitions === undefined) {
      findings.push({
        severity: 'warning',
        subject: `topic:${topic}`,
        setting: 'exists',
        actual: 'false',
        expected: 'true',
        message: `no Redis Streams topic ${topic} under prefix ${prefix}`,
      });
      continue;
    }
    for (let p = 0; p < partitions; p++) {
      const key = keys.stream(topic, p);
      if (!(await redis.exists(key))) {
        findings.push({
          severity: 'error',
          subject: `stream:${key}`,
          setting: 'exists',
          actual: 'false',
          expected: 'true',
          message: `partition ${p} of ${topic} has no stream: it was deleted with whatever it held`,
        });
        continue;
      }
      reports.push(await inspectStream(redis, key, findings));
    }
  }
  return reports;
}

async function inspectStream(redis: Redis, key: string, findings: RedisFinding[]): Promise<RedisStreamReport> {
  const stream = replyFields((await redis.call('XINFO', 'STREAM', key)) as unknown[]);
  const maxDeleted = deletedUpTo(stream);
  const groups = ((await redis.call('XINFO', 'GROUPS', key)) as unknown[][]).map((g) => {
    const f = replyFields(g);
    return {
      name: String(f.get('name')),
      pending: Number(f.get('pending') ?? 0),
      lastDeliveredId: String(f.get('last-delivered-id') ?? '0-0'),
      entriesRead: numberOrNull(f.get('entries-read')),
      lag: numberOrNull(f.get('lag')),
    };
  });
  const report: RedisStreamReport = {
    key,
    length: Number(stream.get('length') ?? 0),
    entriesAdded: Number(stream.get('entries-added') ?? 0),
    deletedUpTo: maxDeleted,
    groups,
  };
  if (maxDeleted === '0-0') return report;

  let unsafe = false;
  for (const group of groups) {
    const subject = `group:${key}/${group.name}`;
    if (compareIds(maxDeleted, group.lastDeliveredId) > 0) {
      unsafe = true;
      findings.push({
        severity: 'error',
        subject,
        setting: 'deleted-up-to',
        actual: maxDeleted,
        expected: `<= ${group.lastDeliveredId} (the group's last-delivered id)`,
        message: 'entries the group had not read yet were deleted (stream trimmed or XDEL): those messages are lost for it',
      });
      continue;
    }
    const lostPending = group.pending > 0 ? await deletedPending(redis, key, group.name, maxDeleted) : [];
    if (lostPending.length > 0) {
      unsafe = true;
      findings.push({
        severity: 'error',
        subject,
        setting: 'pending',
        actual: `${lostPending.length} deleted, first ${lostPending[0]}`,
        expected: 'every pending entry present',
        message: 'entries the group read but never acknowledged were deleted: their effect may never have been applied',
      });
    }
  }
  if (groups.length === 0) {
    findings.push({
      severity: 'warning',
      subject: `stream:${key}`,
      setting: 'deleted-up-to',
      actual: maxDeleted,
      expected: '0-0',
      message: 'entries were deleted while no group existed; a group created later never sees them',
    });
  } else if (!unsafe) {
    findings.push({
      severity: 'info',
      subject: `stream:${key}`,
      setting: 'deleted-up-to',
      actual: maxDeleted,
      expected: '0-0',
      message: 'trimmed below what every group acknowledged (zeroloss never trims); trace and reconcile cannot read those entries',
    });
  }
  return report;
}

/**
 * Redis 7.0 records the highest id XDEL removed (`max-deleted-entry-id`) but not what XTRIM removed. The
 * transport appends with `0-*`, so its ids are dense (`0-1`, `0-2`, ...: the n-th entry ever added is
 * `0-n`) and every id below the first remaining entry, or up to `entries-added` in an empty stream, was
 * trimmed. A stream someone else wrote with other ids reports only what XDEL removed.
 */
function deletedUpTo(stream: Map<string, unknown>): string {
  const maxDeleted = String(stream.get('max-deleted-entry-id') ?? '0-0');
  const lastId = String(stream.get('last-generated-id') ?? '0-0');
  if (!lastId.startsWith('0-')) return maxDeleted;
  const length = Number(stream.get('length') ?? 0);
  const added = Number(stream.get('entries-added') ?? 0);
  const firstEntry = stream.get('first-entry') as [string, ...unknown[]] | null | undefined;
  const trimmedBelow = length === 0 ? added + 1 : Number(String(firstEntry?.[0] ?? '0-1').split('-')[1]);
  const trimmed = `0-${Math.max(0, trimmedBelow - 1)}`;
  return compareIds(trimmed, maxDeleted) > 0 ? trimmed : maxDeleted;
}

/** Pending ids at or below the highest deleted id whose entry is gone (checked up to 1,000). */
async function deletedPending(redis: Redis, key: string, group: string, maxDeleted: string): Promise<string[]> {
  const pending = (await redis.call('XPENDING', key, group, '-', maxDeleted, 1000)) as Array<[string, ...unknown[]]>;
  if (pending.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const [id] of pending) pipeline.xrange(key, id, id);
  const found = (await pipeline.exec()) ?? [];
  return pending.filter((_, i) => ((found[i]?.[1] as unknown[] | undefined) ?? []).length === 0).map(([id]) => id);
}
