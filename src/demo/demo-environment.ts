import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { createAdmin, ensureTopic } from '../adapters/kafka/kafka-admin.ts';
import { KafkaPublisher } from '../adapters/kafka/kafka-publisher.ts';
import { migrate } from '../adapters/postgres/migrations.ts';
import { pgDatabase } from '../adapters/postgres/pg-database.ts';
import { pgliteDatabase } from '../adapters/postgres/pglite-database.ts';
import { TableLogAdmin } from '../adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../adapters/table-log/table-log-publisher.ts';
import { quoteIdent } from '../core/identifier.ts';
import { deadLetterTopic } from '../consumer/delivery.ts';
import type { Database } from '../ports/sql-executor.ts';
import type { Publisher } from '../ports/transport.ts';
import type { TransportSpec } from './demo-role.ts';
import type { InstanceHost } from './demo-instances.ts';

/** The database and transport of one demo run, private to it: a fresh PGlite directory or Postgres schema, fresh topics. */
export interface DemoEnvironment {
  /** The main thread's own access (workload, duplicates, progress, audit). */
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
  let db: Database;
  let host: InstanceHost;
  let databaseLabel: string;
  let closeDb: (keep: boolean) => Promise<KeptData | undefined>;
  if (options.pgUrl) {
    const url = options.pgUrl;
    db = pgDatabase({ connectionString: url, max: 10 });
    host = { kind: 'process', pgUrl: url };
    databaseLabel = `Postgres ${redact(url)}, schema ${schema}`;
    closeDb = async (keep) => {
      if (!keep) await db.query(`drop schema if exists ${quoteIdent(schema, 'schema')} cascade`).catch(() => {});
      await db.close();
      return keep ? { schema } : undefined;
    };
  } else {
    const dir = await mkdtemp(join(tmpdir(), 'zeroloss-demo-'));
    const pglite = new PGlite(dir);
    await pglite.waitReady;
    db = pgliteDatabase(pglite);
    host = { kind: 'thread', pglite };
    databaseLabel = `PGlite (file-backed) in ${dir}`;
    closeDb = async (keep) => {
      await pglite.close();
      if (!keep) await rm(dir, { recursive: true, force: true });
      return keep ? { directory: dir } : undefined;
    };
  }
  await migrate(db, schema);

  const topics: string[] = [];
  const partitionsOf = new Map<string, number>();
  if (options.kafka) {
    const brokers = options.kafka;
    const admin = createAdmin(brokers, 'zeroloss-demo');
    const publisher = new KafkaPublisher({ brokers, clientId: `zl-demo-${options.runId}-duplicator`, deliveryTimeoutMs: 5_000 });
    return {
      db,
      host,
      schema,
      transport: { kind: 'kafka', brokers },
      databaseLabel,
      transportLabel: `Kafka ${brokers.join(',')}`,
      publisher,
      async createTopic(topic, partitions) {
        for (const t of [topic, deadLetterTopic(topic)]) {
          await ensureTopic(admin, { topic: t, partitions });
          topics.push(t);
          partitionsOf.set(t, partitions);
        }
      },
      async lag(groupId, topic) {
        const [ends, groups] = await Promise.all([
          // timestamp -1: the end of each partition (the next offset to be written)
          admin.listOffsets({
            topics: [
              {
                name: topic,
                partitions: Array.from({ length: partitionsOf.get(topic) ?? 1 }, (_, i) => ({ partitionIndex: i, timestamp: -1n })),
              },
            ],
          }),
          admin.listConsumerGroupOffsets({ groups: [groupId] }),
        ]);
        const committed = new Map<number, bigint>();
        for (const t of groups[0]?.topics ?? []) {
          if (t.name !== topic) continue;
          for (const p of t.partitions) committed.set(p.partitionIndex, p.committedOffset);
        }
        let lag = 0n;
        for (const p of ends[0]?.partitions ?? []) {
          const at = committed.get(p.partitionIndex) ?? -1n;
          lag += p.offset - (at < 0n ? 0n : at);
        }
        return lag;
      },
      async close(keep) {
        await publisher.close().catch(() => {});
        if (!keep && topics.length > 0) await admin.deleteTopics({ topics }).catch(() => {});
        await admin.close().catch(() => {});
        const kept = await closeDb(keep);
        return kept ? { ...kept, topics } : undefined;
      },
    };
  }

  const admin = new TableLogAdmin(db, { schema });
  return {
    db,
    host,
    schema,
    transport: { kind: 'table-log' },
    databaseLabel,
    transportLabel: 'table log (the embedded transport, in the same database)',
    publisher: new TableLogPublisher(db, { schema }),
    async createTopic(topic, partitions) {
      await admin.createTopic(topic, partitions);
      await admin.createTopic(deadLetterTopic(topic), partitions);
    },
    async lag(groupId, topic) {
      const lags = await admin.lag(groupId, topic);
      return lags.reduce((sum, p) => sum + p.lag, 0n);
    },
    close: (keep) => closeDb(keep),
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
