import { Redis } from 'ioredis';
import { classifyError, ZerolossError } from '../../core/errors.ts';
import { validateTopic } from '../../core/message.ts';
import { readPartitionCounts } from './redis-streams-admin.ts';
import { redisStreamsKeys } from './redis-streams-keys.ts';

/**
 * The Redis side of `zeroloss doctor`: what in a server's settings or in the transport's streams breaks
 * "no committed message is lost". Returns findings; printing is the caller's.
 */

/** appendfsync levels from the weakest to the strongest. */
export const FSYNC_LEVELS = ['no', 'everysec', 'always'] as const;
export type FsyncLevel = (typeof FSYNC_LEVELS)[number];

export interface RedisFinding {
  severity: 'error' | 'warning' | 'info';
  /** `redis`, `stream:<key>` or `group:<stream key>/<group>`. */
  subject: string;
  setting: string;
  actual: string;
  expected: string;
  message: string;
}

export interface RedisStreamReport {
  key: string;
  length: number;
  entriesAdded: number;
  /** The highest entry id known to be deleted (trimmed or XDEL), `0-0` when none. */
  deletedUpTo: string;
  groups: Array<{ name: string; pending: number; lastDeliveredId: string; entriesRead: number | null; lag: number | null }>;
}

export interface RedisDurabilityReport {
  ok: boolean;
  /** The URL with its password masked. */
  url: string;
  version: string;
  role: string;
  streams: RedisStreamReport[];
  findings: RedisFinding[];
}

export interface RedisDurabilityOptions {
  url: string;
  /** The weakest appendfsync that passes; `always` unless the operator accepts losing the last second. */
  fsync?: FsyncLevel;
  /** Key prefix of the transport (default `zl`), for inspecting its streams. */
  prefix?: string;
  /** Topics whose streams to inspect; default every topic under the prefix. */
  topics?: string[];
  commandTimeoutMs?: number;
}

/** The URL as it may be printed: a password never leaves this function. */
export function maskRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'redis://<unparseable url>';
  }
}

export async function checkRedisDurability(options: RedisDurabilityOptions): Promise<RedisDurabilityReport> {
  const fsync = options.fsync ?? 'always';
  const url = maskRedisUrl(options.url);
  if (!/^rediss?:\/\//i.test(options.url)) {
    throw new ZerolossError('ZL_INVALID_CONFIG', `--redis must be a redis:// or rediss:// URL, got ${url}`);
  }
  for (const topic of options.topics ?? []) validateTopic(topic);
  // One attempt, no offline queue: an unreachable server is a clear error now, not a retry loop.
  const timeout = options.commandTimeoutMs ?? 10_000;
  const redis = new Redis(options.url, {
    lazyConnect: true,
    connectionName: 'zeroloss-doctor',
    protocol: 2,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: timeout,
    commandTimeout: timeout,
    // disconnect() arms this timer for a socket that may already be closed (a refused connection), and
    // the CLI would wait it out (2 s by default) before exiting.
    disconnectTimeout: 100,
  });
  // ioredis rejects connect() with "Connection is closed."; the error event says why (ECONNREFUSED, ...).
  let connectionError: unknown;
  redis.on('error', (error) => {
    connectionError ??= error;
  });
  try {
    await redis.connect().catch((error: unknown) => {
      throw connectionError ?? error;
    });
    const info = parseInfo(String(await redis.info()));
    const config = await readConfig(redis);
    const findings = serverFindings(info, config, fsync);
    const streams = await inspectStreams(redis, options.prefix ?? 'zl', options.topics, findings);
    return {
      ok: findings.every((f) => f.severity !== 'error'),
      url,
      version: info.get('redis_version') ?? 'unknown',
      role: info.get('role') ?? 'unknown',
      streams,
      findings,
    };
  } catch (error) {
    if (error instanceof ZerolossError) throw error;
    const message = classifyError(error).message.split(options.url).join(url);
    throw new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', `cannot check Redis at ${url}: ${message}`, { retryable: true });
  } finally {
    redis.disconnect();
  }
}

function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) fields.set(line.slice(0, at), line.slice(at + 1));
  }
  return fields;
}

const CONFIG_NAMES = ['appendonly', 'appendfsync', 'no-appendfsync-on-rewrite', 'maxmemory', 'maxmemory-policy', 'min-replicas-to-write'];

/** CONFIG GET, or nothing where a managed Redis refuses CONFIG (then INFO stands in where it can). */
async function readConfig(redis: Redis): Promise<Map<string, string>> {
  try {
    const flat = (await redis.call('CONFIG', 'GET', ...CONFIG_NAMES)) as string[];
    const config = new Map<string, string>();
    for (let i = 0; i + 1 < flat.length; i += 2) config.set(String(flat[i]), String(flat[i + 1]));
    return config;
  } catch (error) {
    if (error instanceof Error && error.name === 'ReplyError') return new Map();
    throw error;
  }
}

function serverFindings(info: Map<string, string>, config: Map<string, string>, required: FsyncLevel): RedisFinding[] {
  const findings: RedisFinding[] = [];
  const add = (severity: RedisFinding['severity'], setting: string, actual: string, expected: string, message: string) =>
    findings.push({ severity, subject: 'redis', setting, actual, expected, message });

  const role = info.get('role') ?? 'unknown';
  if (role !== 'master') {
    add('error', 'role', role, 'master', 'a replica refuses writes and may lag its master; point zeroloss at the master');
  }

  const aofEnabled = config.get('appendonly') ?? (info.has('aof_enabled') ? (info.get('aof_enabled') === '1' ? 'yes' : 'no') : 'unknown');
  if (aofEnabled !== 'yes') {
    add(
      'error',
      'appendonly',
      aofEnabled,
      'yes',
      'without the append-only file a restart loses every acknowledged entry since the last snapshot',
    );
  } else {
    const fsync = config.get('appendfsync') ?? 'unknown';
    const level = FSYNC_LEVELS.indexOf(fsync as FsyncLevel);
    const risk = fsyncRisk(fsync);
    if (level < FSYNC_LEVELS.indexOf(required)) {
      add('error', 'appendfsync', fsync, `${required} (or --redis-fsync ${fsync} to accept the risk)`, risk);
    } else if (fsync !== 'always') {
      add('warning', 'appendfsync', fsync, 'always', `accepted by --redis-fsync ${required}: ${risk}`);
    }
    const noFsyncOnRewrite = config.get('no-appendfsync-on-rewrite');
    if (noFsyncOnRewrite === 'yes' && required !== 'no') {
      add(
        'error',
        'no-appendfsync-on-rewrite',
        'yes',
        'no',
        'while an AOF rewrite or snapshot runs, nothing is fsynced (as appendfsync no)',
      );
    }
    if (info.get('aof_last_write_status') === 'err') {
      add(
        'error',
        'aof_last_write_status',
        'err',
        'ok',
        'the last write to the append-only file failed; Redis refuses writes until it succeeds',
      );
    }
  }

  const maxmemory = config.get('maxmemory') ?? info.get('maxmemory') ?? 'unknown';
  const policy = config.get('maxmemory-policy') ?? info.get('maxmemory_policy') ?? 'unknown';
  if (policy !== 'noeviction') {
    // With maxmemory 0 nothing is evicted, but one CONFIG SET maxmemory later would start evicting streams and leases.
    const limited = maxmemory !== '0';
    add(
      limited ? 'error' : 'warning',
      'maxmemory-policy',
      `${policy} (maxmemory ${maxmemory})`,
      'noeviction',
      limited
        ? 'under memory pressure Redis deletes keys: whole streams (unconsumed entries) or partition leases'
        : 'no eviction while maxmemory is 0, but setting a maxmemory would start deleting streams and leases',
    );
  }

  const minReplicas = config.get('min-replicas-to-write');
  if (minReplicas !== undefined) {
    const replicas = info.get('connected_slaves') ?? '0';
    add(
      'info',
      'min-replicas-to-write',
      minReplicas,
      'informational',
      (replicas === '0'
        ? 'no replica connected: this node holds the only copy'
        : `${replicas} replica(s) connected; replication is asynchronous, so a failover can lose the last acknowledged entries`) +
        (minReplicas === '0' ? '' : `; writes are refused while fewer than ${minReplicas} replicas are connected`),
    );
  }
  return findings;
}

function fsyncRisk(fsync: string): string {
  if (fsync === 'everysec') {
    return 'an OS crash or power loss loses up to ~1 s of acknowledged entries (up to 2 s while the disk stalls); Redis 7.0 has no WAITAOF';
  }
  if (fsync === 'no') return 'the OS flushes when it likes (typically every 30 s): an OS crash or power loss loses that much';
  return 'appendfsync could not be read (CONFIG GET refused); check it by hand';
}

/** Stream ids compared as (milliseconds, sequence). */
function compareIds(a: string, b: string): number {
  const [am = 0n, as = 0n] = a.split('-').map(BigInt);
  const [bm = 0n, bs = 0n] = b.split('-').map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  return as === bs ? 0 : as < bs ? -1 : 1;
}

function fieldsOf(flat: unknown[]): Map<string, unknown> {
  const fields = new Map<string, unknown>();
  for (let i = 0; i + 1 < flat.length; i += 2) fields.set(String(flat[i]), flat[i + 1]);
  return fields;
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
async function inspectStreams(
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
  const stream = fieldsOf((await redis.call('XINFO', 'STREAM', key)) as unknown[]);
  const maxDeleted = deletedUpTo(stream);
  const groups = ((await redis.call('XINFO', 'GROUPS', key)) as unknown[][]).map((g) => {
    const f = fieldsOf(g);
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
