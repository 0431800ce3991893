import type { Redis } from 'ioredis';
import { ioredis } from '../redis/redis-driver.ts';
import { classifyError, ZerolossError } from '../../core/errors.ts';
import { validateTopic } from '../../core/message.ts';
import { inspectStreams, type RedisStreamReport } from './redis-streams-deletions.ts';

/**
 * The Redis side of `zeroloss doctor`: what in a server's settings or in the transport's streams breaks
 * "no committed message is lost". Returns findings; printing is the caller's.
 */

/** appendfsync levels from the weakest to the strongest. */
export const FSYNC_LEVELS = ['no', 'everysec', 'always'] as const;
export type FsyncLevel = (typeof FSYNC_LEVELS)[number];

export interface RedisFinding {
  severity: 'error' | 'warning' | 'info';
  /** `redis`, `topic:<name>`, `stream:<key>` or `group:<stream key>/<group>`. */
  subject: string;
  setting: string;
  actual: string;
  expected: string;
  message: string;
}

export type { RedisStreamReport };

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
  const redis = new ioredis.Redis(options.url, {
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
