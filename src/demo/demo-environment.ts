import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kafka } from '../adapters/kafka/kafka-transport.ts';
import { pglite } from '../adapters/postgres/pglite.ts';
import { postgres } from '../adapters/postgres/postgres.ts';
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
  /** Creates the topic and its `.dlq`. */
  createTopic(topic: string, partitions: number): Promise<void>;
  /** Records of `topic` the group has not committed past yet. */
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
  /** Kafka topics (`--kafka`). */
  topics?: string[];
}

export async function openEnvironment(options: { pgUrl?: string; kafka?: string[]; runId: string }): Promise<DemoEnvironment> {
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
  let transport: Transport & { inspector: BrokerInspector };
  let transportLabel: string;
  let deleteTopics: () => Promise<void> = async () => {};
  if (options.kafka) {
    const brokers = options.kafka;
    const k = kafka({ brokers, publisher: { clientId: `zl-demo-${options.runId}-duplicator`, deliveryTimeoutMs: 5_000 } });
    transport = k;
    transportLabel = `Kafka ${brokers.join(',')}`;
    deleteTopics = async () => {
      if (topics.length > 0) await k.inspector.admin.deleteTopics({ topics });
    };
  } else {
    // The log's tables are the store's own: dropping the schema or the directory removes its topics.
    transport = tableLog(store);
    transportLabel = 'table log (the embedded transport, in the same database)';
  }
  const inspector = transport.inspector;
  return {
    store,
    db: store.db,
    host,
    schema,
    transport: options.kafka ? { kind: 'kafka', brokers: options.kafka } : { kind: 'table-log' },
    databaseLabel,
    transportLabel,
    publisher: transport.publisher,
    async createTopic(topic, partitions) {
      for (const t of [topic, deadLetterTopic(topic)]) {
        await transport.ensureTopic(t, partitions);
        topics.push(t);
      }
    },
    async lag(groupId, topic) {
      const [marks, committed] = await Promise.all([inspector.watermarks(topic), inspector.committedOffsets(groupId)]);
      const at = new Map(committed.filter((c) => c.topic === topic).map((c) => [c.partition, c.offset]));
      let lag = 0n;
      for (const m of marks ?? []) lag += m.high - (at.get(m.partition) ?? m.low);
      return lag;
    },
    async close(keep) {
      if (!keep) await deleteTopics().catch(() => {});
      await transport.close().catch(() => {});
      const kept = await closeStore(keep);
      return kept && options.kafka ? { ...kept, topics } : kept;
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
