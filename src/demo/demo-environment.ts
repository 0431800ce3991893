import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kafka } from '../adapters/kafka/kafka-transport.ts';
import { pglite } from '../adapters/postgres/pglite.ts';
import { postgres } from '../adapters/postgres/postgres.ts';
import { rabbitmq } from '../adapters/rabbitmq/rabbitmq-transport.ts';
import { redisStreams } from '../adapters/redis-streams/redis-streams-transport.ts';
import { tableLog } from '../adapters/table-log/table-log-transport.ts';
import { quoteIdent } from '../core/identifier.ts';
import { deadLetterTopic } from '../consumer/delivery.ts';
import type { PostgresStore as Store } from '../adapters/postgres/postgres-store.ts';
import type { Transport } from '../ports/backends.ts';
import type { BrokerInspector } from '../ports/broker-inspector.ts';
import type { Database } from '../ports/sql-executor.ts';
import type { Publisher } from '../ports/transport.ts';
import type { TransportSpec } from './demo-role.ts';
import type { InstanceHost } from './demo-instances.ts';

/** The database and transport of one demo run, private to it: a fresh PGlite directory or Postgres schema, fresh topics. */
export interface DemoEnvironment {
  /** The main thread's store (workload, duplicates, progress, audit); its schema holds the business tables too. */
  store: Store;
  /** `store.db`: the main thread's own access. */
  db: Database;
  host: InstanceHost;
  /** Holds the business tables and zeroloss's tables. */
  schema: string;
  transport: TransportSpec;
  /** "PGlite (file-backed) in /tmp/…" or "Postgres …, schema …". */
  databaseLabel: string;
  transportLabel: string;
  /** Publishes straight to the transport, bypassing the outbox: the duplicate injector's way in. */
  publisher: Publisher;
  /** Reads the transport back (the dashboard's trail and lag); undefined where the transport has none. */
  inspector: BrokerInspector | undefined;
  /** Creates the topic and its `.dlq`; `groupIds` read the topic (their broker-side offsets go with the topics). */
  createTopic(topic: string, partitions: number, groupIds: readonly string[]): Promise<void>;
  /** Records of `topic` the group has not committed past yet; 0 where the transport has no inspector to ask. */
  lag(groupId: string, topic: string): Promise<bigint>;
  /** Removes what the run created (unless `keep`); returns what was kept, if anything. */
  close(keep: boolean): Promise<KeptData | undefined>;
}

/** What `--keep` leaves behind for inspection. */
export interface KeptData {
  /** The PGlite data directory (embedded), or */
  directory?: string;
  /** the Postgres schema (`--pg`). */
  schema?: string;
  /** Broker topics (`--kafka`, `--redis`, `--rabbitmq`). */
  topics?: string[];
  /** The Redis key prefix the run's topics live under (`--redis`). */
  prefix?: string;
}

export interface EnvironmentOptions {
  pgUrl?: string;
  /** At most one of kafka, redis and rabbitmq; none is the table log. */
  kafka?: string[];
  redis?: string;
  rabbitmq?: string;
  runId: string;
}

export async function openEnvironment(options: EnvironmentOptions): Promise<DemoEnvironment> {
  const schema = `zl_demo_${options.runId}`;
  let store: Store;
  let host: InstanceHost;
  let databaseLabel: string;
  let closeStore: (keep: boolean) => Promise<KeptData | undefined>;
  if (options.pgUrl) {
    const url = options.pgUrl;
    const pg = postgres(url, { schema, max: 10 });
    store = pg;
    host = { kind: 'process', pgUrl: url };
    databaseLabel = `Postgres ${redact(url)}, schema ${schema}`;
    closeStore = async (keep) => {
      if (!keep) await pg.db.query(`drop schema if exists ${quoteIdent(schema, 'schema')} cascade`).catch(() => {});
      await pg.close();
      return keep ? { schema } : undefined;
    };
  } else {
    const dir = await mkdtemp(join(tmpdir(), 'zeroloss-demo-'));
    const embedded = pglite(dir, { schema });
    await embedded.pglite.waitReady;
    store = embedded;
    host = { kind: 'thread', pglite: embedded.pglite };
    databaseLabel = `PGlite (file-backed) in ${dir}`;
    closeStore = async (keep) => {
      await embedded.close();
      if (!keep) await rm(dir, { recursive: true, force: true });
      return keep ? { directory: dir } : undefined;
    };
  }
  await store.migrate();

  const topics: string[] = [];
  const groups = new Set<string>();
  let transport: Transport;
  let spec: TransportSpec;
  let transportLabel: string;
  let deleteTopics: () => Promise<void> = async () => {};
  let kept: KeptData = {};
  if (options.kafka) {
    const brokers = options.kafka;
    const k = kafka({ brokers, publisher: { clientId: `zl-demo-${options.runId}-duplicator`, deliveryTimeoutMs: 5_000 } });
    transport = k;
    spec = { kind: 'kafka', brokers };
    transportLabel = `Kafka ${brokers.join(',')}`;
    deleteTopics = async () => {
      if (topics.length > 0) await k.inspector.admin.deleteTopics({ topics });
    };
    kept = { topics };
  } else if (options.redis) {
    // A prefix of the run's own: its streams, leases and group keys never meet another run's.
    const prefix = `zl-demo-${options.runId}`;
    const r = redisStreams(options.redis, { prefix, publisher: { commandTimeoutMs: 5_000 } });
    transport = r;
    spec = { kind: 'redis-streams', url: options.redis, prefix };
    transportLabel = `Redis Streams ${redact(options.redis)}, key prefix ${prefix}`;
    // Streams, counts and leases go with the topic; the group's member keys expire with the last session.
    deleteTopics = async () => {
      for (const t of topics) await r.topicAdmin.deleteTopic(t);
    };
    kept = { topics, prefix };
  } else if (options.rabbitmq) {
    const r = rabbitmq(options.rabbitmq, { publisher: { deliveryTimeoutMs: 5_000 } });
    transport = r;
    spec = { kind: 'rabbitmq', url: options.rabbitmq };
    transportLabel = `RabbitMQ ${redact(options.rabbitmq)}`;
    // The stream queues and the group's offset queues; lock queues and the group exchange go with their connections.
    deleteTopics = async () => {
      for (const t of topics) {
        const partitions = await r.topicAdmin.partitions(t).catch(() => 0);
        for (const g of groups) await r.topicAdmin.deleteGroupOffsets(g, t, partitions).catch(() => {});
        await r.topicAdmin.deleteTopic(t);
      }
    };
    kept = { topics };
  } else {
    // The log's tables are the store's own: dropping the schema or the directory removes its topics.
    transport = tableLog(store);
    spec = { kind: 'table-log' };
    transportLabel = 'table log (the embedded transport, in the same database)';
  }
  const inspector = transport.inspector;
  return {
    store,
    db: store.db,
    host,
    schema,
    transport: spec,
    databaseLabel,
    transportLabel,
    publisher: transport.publisher,
    inspector,
    async createTopic(topic, partitions, groupIds) {
      for (const g of groupIds) groups.add(g);
      for (const t of [topic, deadLetterTopic(topic)]) {
        await transport.ensureTopic(t, partitions);
        topics.push(t);
      }
    },
    async lag(groupId, topic) {
      // A bundle without an inspector: the audit's row counts are the whole settle test.
      if (!inspector) return 0n;
      const [marks, committed] = await Promise.all([inspector.watermarks(topic), inspector.committedOffsets(groupId)]);
      const at = new Map(committed.filter((c) => c.topic === topic).map((c) => [c.partition, c.offset]));
      let lag = 0n;
      for (const m of marks ?? []) lag += m.high - (at.get(m.partition) ?? m.low);
      return lag;
    },
    async close(keep) {
      if (!keep) await deleteTopics().catch(() => {});
      await transport.close().catch(() => {});
      const keptStore = await closeStore(keep);
      return keptStore && kept.topics ? { ...keptStore, ...kept } : keptStore;
    },
  };
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}
