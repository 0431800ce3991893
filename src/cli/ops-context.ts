import { KafkaInspector } from '../adapters/kafka/kafka-inspector.ts';
import { KafkaPublisher } from '../adapters/kafka/kafka-publisher.ts';
import { KafkaTopicAdmin } from '../adapters/kafka/kafka-topic-admin.ts';
import { TableLogInspector } from '../adapters/table-log/table-log-inspector.ts';
import { TableLogPublisher } from '../adapters/table-log/table-log-publisher.ts';
import type { BrokerInspector } from '../ports/broker-inspector.ts';
import type { Publisher } from '../ports/transport.ts';
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
  /** Kafka when it was named (--kafka or ZEROLOSS_KAFKA_BROKERS), the schema's table log with --table-log. */
  broker: BrokerInspector | undefined;
  /** Kafka only. */
  admin: KafkaTopicAdmin | undefined;
  /** Created on first use. */
  publisher(): Publisher;
}

/** The flag that points the broker-side commands at the embedded table log instead of Kafka. */
export const tableLogOption = { 'table-log': { type: 'boolean' } } as const;
export const tableLogHelp = `  --table-log               the broker is the embedded table log in this schema (no Kafka)`;

/**
 * Opens what the operations commands share — the database, the operations store, and the broker: Kafka
 * when it is named or `kafka: 'required'`, or the schema's table log with --table-log — runs `fn`, and
 * closes everything whatever happens.
 */
export async function withOps<T>(
  values: { pg?: string; schema?: string; kafka?: string; 'table-log'?: boolean },
  kafka: 'required' | 'optional' | 'none',
  fn: (ctx: OpsContext) => Promise<T>,
): Promise<T> {
  const schema = values.schema ?? 'zeroloss';
  const tableLog = values['table-log'] === true;
  const brokerList =
    kafka === 'none' || tableLog
      ? undefined
      : kafka === 'required' || values.kafka || process.env.ZEROLOSS_KAFKA_BROKERS
        ? kafkaBrokers(values.kafka)
        : undefined;
  const db = pgDatabase({ connectionString: pgUrl(values.pg), max: 4 });
  const kafkaInspector = brokerList ? new KafkaInspector({ brokers: brokerList }) : undefined;
  const broker: BrokerInspector | undefined = tableLog && kafka !== 'none' ? new TableLogInspector(db, { schema }) : kafkaInspector;
  let publisher: Publisher | undefined;
  const ctx: OpsContext = {
    schema,
    db,
    store: new PostgresOperationsStore(db, { schema }),
    deadLetters: new PostgresDeadLetterStore(db, { schema }),
    broker,
    admin: kafkaInspector ? new KafkaTopicAdmin(kafkaInspector.admin) : undefined,
    publisher() {
      publisher ??= tableLog
        ? new TableLogPublisher(db, { schema })
        : new KafkaPublisher({ brokers: kafkaBrokers(values.kafka), clientId: 'zeroloss-ops' });
      return publisher;
    },
  };
  try {
    return await fn(ctx);
  } finally {
    await publisher?.close().catch(() => {});
    await kafkaInspector?.close().catch(() => {});
    await db.close().catch(() => {});
  }
}
