import { readFileSync } from 'node:fs';
import { type DoctorReport, doctor, type ProducerSettings } from '../../adapters/kafka/kafka-admin.ts';
import { kafka } from '../../adapters/kafka/kafka-transport.ts';
import { checkRedisDurability, FSYNC_LEVELS, type FsyncLevel } from '../../adapters/redis-streams/redis-durability.ts';
import { walDoctor } from '../../adapters/postgres/wal/wal-doctor.ts';
import { pgDatabase } from '../../adapters/postgres/pg-database.ts';
import { ZerolossError } from '../../core/errors.ts';
import { mib } from '../../operations/status.ts';
import { connectionOptions, parse, pgUrl, print } from '../args.ts';
import { kafkaSettings } from '../kafka-connection-options.ts';

export const doctorHelp = `Usage: zeroloss doctor --kafka <brokers> [--topic <name> ...] [--producer-config <file.json>] [--json]
       zeroloss doctor --redis <url> [--redis-fsync always|everysec|no] [--redis-prefix <prefix>] [--topic <name> ...] [--json]
       zeroloss doctor --pg <url> [--max-slot-lag-mb <n>] [--json]

Checks live topics (all non-internal ones, or those named) and producer settings against the
durability profile: replication factor >= 3, min.insync.replicas >= 2, unclean leader election off,
acks=all, idempotence on, bounded delivery timeout. Warns when a topic's <topic>.dlq or
<topic>.retry.<n> has a max.message.bytes less than 8 KiB above the topic's own (a copy of a record near
the limit, plus failure headers, would not fit). Exits 1 when any check is an error.

  --producer-config <file>  JSON with {"acks", "idempotent", "deliveryTimeoutMs"} of a producer to check
                            (default: zeroloss's own relay producer, which always uses the profile)

With --redis (alone, or with --kafka to check both) checks the Redis that the Redis Streams transport
uses: appendonly yes; appendfsync at least the required level; no-appendfsync-on-rewrite no;
maxmemory-policy noeviction (a warning only while maxmemory is 0); the server is a master, not a
replica; and, for the transport's streams (every topic under the prefix, or those named), that no entry
a consumer group had not acknowledged was trimmed or deleted. min-replicas-to-write is shown as info.
The URL's password is never printed.

  --redis-fsync <level>     weakest appendfsync that passes (default always: Redis 7.0 has no WAITAOF,
                            and everysec loses up to ~1 s of acknowledged entries on an OS crash or
                            power loss; pass everysec to accept that)
  --redis-prefix <prefix>   key prefix of the Redis Streams transport (default zl)

With --pg (alone, or beside the others) checks the database for the WAL relay (relay --mode wal):
wal_level = logical (an error otherwise); max_slot_wal_keep_size set (a warning while unlimited, the
default: a slot nobody reads then keeps WAL until the disk is full); and every logical replication slot:
a warning when no reader is connected (inactive) or its unconfirmed WAL exceeds --max-slot-lag-mb
(default 1024), an error when the server already removed WAL it needs (wal_status lost), and an error
for a zeroloss slot (zeroloss_<schema>, or a shard's zeroloss_<schema>_s<n>) whose hand-over is not
recorded: a --create-slot stopped before handing the older rows over, relays stand by on it (run it again).

Kafka with TLS or SASL: --kafka-tls, --kafka-ca <file>, --kafka-sasl <mechanism>, --kafka-username,
--kafka-password-file <file>, --config-file <file.json> … (all of them: zeroloss help kafka)`;

export async function doctorCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...connectionOptions,
    topic: { type: 'string', multiple: true },
    'producer-config': { type: 'string' },
    redis: { type: 'string' },
    'redis-fsync': { type: 'string' },
    'redis-prefix': { type: 'string' },
    'max-slot-lag-mb': { type: 'string' },
  });
  if (values.help) {
    console.log(doctorHelp);
    return 0;
  }
  const fsync = values['redis-fsync'] ?? 'always';
  if (!FSYNC_LEVELS.includes(fsync as FsyncLevel)) {
    throw new ZerolossError('ZL_INVALID_CONFIG', `--redis-fsync must be one of ${FSYNC_LEVELS.join(', ')}`);
  }
  // Kafka is checked when asked for, or when nothing else is (then --kafka or its variable is required).
  const kafka =
    values.kafka !== undefined || (values.redis === undefined && values.pg === undefined) ? await kafkaReport(values) : undefined;
  const wal = values.pg === undefined ? undefined : await walReport(pgUrl(values.pg), values['max-slot-lag-mb']);
  const redis =
    values.redis === undefined
      ? undefined
      : await checkRedisDurability({
          url: values.redis,
          fsync: fsync as FsyncLevel,
          prefix: values['redis-prefix'],
          topics: values.topic,
        });
  const findings = [...(kafka?.findings ?? []), ...(redis?.findings ?? []), ...(wal?.findings ?? [])];
  const ok = (kafka?.ok ?? true) && (redis?.ok ?? true) && (wal?.ok ?? true);
  const { findings: _redisFindings, ok: _redisOk, ...redisSummary } = redis ?? { findings: [], ok: true };
  const { findings: _walFindings, ok: _walOk, ...walSummary } = wal ?? { findings: [], ok: true };
  const report = { ...kafka, ok, ...(redis ? { redis: redisSummary } : {}), ...(wal ? { postgres: walSummary } : {}), findings };
  print(values.json, report, () =>
    [
      ...(kafka ? [`brokers: ${kafka.brokers}, topics checked: ${kafka.topics.length}`] : []),
      ...(redis ? [`redis: ${redis.url} ${redis.version} ${redis.role}, streams checked: ${redis.streams.length}`] : []),
      ...(wal
        ? [
            `postgres: wal_level ${wal.walLevel}, max_slot_wal_keep_size ${wal.maxSlotWalKeepSize}, logical slots: ${wal.slots.length}`,
            // Every slot, a sharded outbox's one per shard: who reads it, what it holds back.
            ...wal.slots.map(
              (x) =>
                `  slot ${x.slot} (${x.database}): ${x.active ? `read${x.holder ? ` by ${x.holder}` : ''}` : 'NOT READ'}, retained ${mib(x.retainedBytes)}, lag ${mib(x.lagBytes)}, wal ${x.walStatus}`,
            ),
          ]
        : []),
      ...findings.map((f) => `${f.severity.toUpperCase()} ${f.subject} ${f.setting}=${f.actual} (expected ${f.expected}): ${f.message}`),
      ok ? 'OK: durability profile holds' : 'FAIL: the durability profile is broken (see errors above)',
    ].join('\n'),
  );
  return ok ? 0 : 1;
}

async function walReport(url: string, maxLagMb: string | undefined) {
  const maxLagBytes = maxLagMb === undefined ? undefined : Number(maxLagMb) * 1024 * 1024;
  if (maxLagBytes !== undefined && !(maxLagBytes > 0))
    throw new ZerolossError('ZL_INVALID_CONFIG', '--max-slot-lag-mb must be a positive number');
  const db = pgDatabase({ connectionString: url, max: 1 });
  try {
    return await walDoctor(db, { maxLagBytes });
  } finally {
    await db.close();
  }
}

async function kafkaReport(
  values: Parameters<typeof kafkaSettings>[0] & { topic?: string[]; 'producer-config'?: string },
): Promise<DoctorReport> {
  const producer = values['producer-config']
    ? (JSON.parse(readFileSync(values['producer-config'], 'utf8')) as ProducerSettings)
    : undefined;
  const transport = kafka({ ...kafkaSettings(values), inspector: { clientId: 'zeroloss-admin' } });
  try {
    return await doctor(transport.inspector.admin, { topics: values.topic, producer });
  } finally {
    await transport.close();
  }
}
