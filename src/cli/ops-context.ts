import { kafka } from '../adapters/kafka/kafka-transport.ts';
import { postgres } from '../adapters/postgres/postgres.ts';
import { tableLog } from '../adapters/table-log/table-log-transport.ts';
import type { OperationsStore, Store, Transport } from '../ports/backends.ts';
import type { BrokerInspector, TopicAdmin } from '../ports/broker-inspector.ts';
import type { DeadLetterQueue, DeadLetterWriter } from '../ports/dead-letter-store.ts';
import type { Database } from '../ports/sql-executor.ts';
import type { Publisher } from '../ports/transport.ts';
import { pgUrl } from './args.ts';
import { kafkaSettings } from './kafka-connection-options.ts';

export interface OpsContext {
  schema: string;
  db: Database;
  store: OperationsStore;
  deadLetters: DeadLetterWriter & DeadLetterQueue;
  /** Kafka when it was named (--kafka or ZEROLOSS_KAFKA_BROKERS), the schema's table log with --table-log. */
  broker: BrokerInspector | undefined;
  /** The broker's topic admin: Kafka's, or the table log's with --table-log. */
  admin: TopicAdmin | undefined;
  /** Created on first use. */
  publisher(): Publisher;
}

/** The flag that points the broker-side commands at the embedded table log instead of Kafka. */
export const tableLogOption = { 'table-log': { type: 'boolean' } } as const;
export const tableLogHelp = `  --table-log               the broker is the embedded table log in this schema (no Kafka)`;

/**
 * Opens what the operations commands share — the store of the schema, and the transport: Kafka when it is
 * named or `kafka: 'required'`, or the schema's table log with --table-log — runs `fn`, and closes everything
 * whatever happens.
 */
export async function withOps<T>(
  values: Parameters<typeof kafkaSettings>[0] & { pg?: string; schema?: string; 'table-log'?: boolean },
  kafka: 'required' | 'optional' | 'none',
  fn: (ctx: OpsContext) => Promise<T>,
): Promise<T> {
  const useTableLog = values['table-log'] === true;
  const named = kafka === 'required' || Boolean(values.kafka || process.env.ZEROLOSS_KAFKA_BROKERS);
  // Flags are checked before anything opens: a missing --kafka fails with nothing to close.
  const brokers = kafka !== 'none' && !useTableLog && named ? kafkaSettings(values) : undefined;
  const store = postgres(pgUrl(values.pg), { schema: values.schema, max: 4 });
  // The broker the commands inspect; with 'none' they read the database alone.
  const inspected = kafka === 'none' ? undefined : useTableLog ? tableLog(store) : brokers ? opsKafka(brokers) : undefined;
  // A publisher (repairs, resends, replays) may be asked for without a broker to inspect: Kafka then.
  let publishing: Transport | undefined;
  const ctx: OpsContext = {
    schema: store.schema,
    db: store.db,
    store: store.operations,
    deadLetters: store.deadLetters,
    broker: inspected?.inspector,
    admin: inspected?.admin,
    publisher() {
      publishing ??= inspected ?? (useTableLog ? tableLog(store) : opsKafka(kafkaSettings(values)));
      return publishing.publisher;
    },
  };
  try {
    return await fn(ctx);
  } finally {
    await closeAll(store, [inspected, publishing]);
  }
}

function opsKafka(connection: ReturnType<typeof kafkaSettings>): Transport {
  return kafka({ ...connection, publisher: { clientId: 'zeroloss-ops' } });
}

async function closeAll(store: Store, transports: Array<Transport | undefined>): Promise<void> {
  for (const transport of new Set(transports)) await transport?.close().catch(() => {});
  await store.close().catch(() => {});
}
