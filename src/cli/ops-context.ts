import { KafkaInspector } from '../adapters/kafka/kafka-inspector.ts';
import { KafkaPublisher } from '../adapters/kafka/kafka-publisher.ts';
import { KafkaTopicAdmin } from '../adapters/kafka/kafka-topic-admin.ts';
import { pgDatabase } from '../adapters/postgres/pg-database.ts';
import { PostgresDeadLetterStore } from '../adapters/postgres/postgres-dead-letter-store.ts';
import { PostgresOperationsStore } from '../adapters/postgres/postgres-operations-store.ts';
import type { Database } from '../ports/sql-executor.ts';
import { kafkaBrokers, pgUrl } from './args.ts';

export interface OpsContext {
  schema: string;
  db: Database;
  store: PostgresOperationsStore;
  deadLetters: PostgresDeadLetterStore;
  /** Present when Kafka was named (--kafka or ZEROLOSS_KAFKA_BROKERS). */
  broker: KafkaInspector | undefined;
  admin: KafkaTopicAdmin | undefined;
  /** Created on first use. */
  publisher(): KafkaPublisher;
}

/**
 * Opens what the operations commands share — the database, the operations store, and Kafka when it is
 * named or `kafka: 'required'` — runs `fn`, and closes everything whatever happens.
 */
export async function withOps<T>(
  values: { pg?: string; schema?: string; kafka?: string },
  kafka: 'required' | 'optional' | 'none',
  fn: (ctx: OpsContext) => Promise<T>,
): Promise<T> {
  const schema = values.schema ?? 'zeroloss';
  const brokerList =
    kafka === 'none'
      ? undefined
      : kafka === 'required' || values.kafka || process.env.ZEROLOSS_KAFKA_BROKERS
        ? kafkaBrokers(values.kafka)
        : undefined;
  const db = pgDatabase({ connectionString: pgUrl(values.pg), max: 4 });
  const broker = brokerList ? new KafkaInspector({ brokers: brokerList }) : undefined;
  let publisher: KafkaPublisher | undefined;
  const ctx: OpsContext = {
    schema,
    db,
    store: new PostgresOperationsStore(db, { schema }),
    deadLetters: new PostgresDeadLetterStore(db, { schema }),
    broker,
    admin: broker ? new KafkaTopicAdmin(broker.admin) : undefined,
    publisher() {
      publisher ??= new KafkaPublisher({ brokers: kafkaBrokers(values.kafka), clientId: 'zeroloss-ops' });
      return publisher;
    },
  };
  try {
    return await fn(ctx);
  } finally {
    await publisher?.close().catch(() => {});
    await broker?.close().catch(() => {});
    await db.close().catch(() => {});
  }
}
