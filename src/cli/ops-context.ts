import { kafka } from '../adapters/kafka/kafka-transport.ts';
import { postgres } from '../adapters/postgres/postgres.ts';
import { rabbitmq } from '../adapters/rabbitmq/rabbitmq-transport.ts';
import { redisStreams } from '../adapters/redis-streams/redis-streams-transport.ts';
import { tableLog } from '../adapters/table-log/table-log-transport.ts';
import { ZerolossError } from '../core/errors.ts';
import type { OperationsStore, Store, Transport } from '../ports/backends.ts';
import type { BrokerInspector, TopicAdmin } from '../ports/broker-inspector.ts';
import type { DeadLetterQueue, DeadLetterWriter } from '../ports/dead-letter-store.ts';
import type { GroupAdmin } from '../ports/group-admin.ts';
import type { Database } from '../ports/sql-executor.ts';
import type { ProducerSequenceStore, SequenceStore } from '../ports/sequence-store.ts';
import type { Publisher, Subscriber } from '../ports/transport.ts';
import { pgUrl } from './args.ts';
import { kafkaSettings } from './kafka-connection-options.ts';
import type { StateColumnSource } from '../adapters/postgres/state-column-source.ts';
import { configuredSources } from './config-sources.ts';

export interface OpsContext {
  schema: string;
  db: Database;
  store: OperationsStore;
  deadLetters: DeadLetterWriter & DeadLetterQueue;
  /**
   * Kafka when it was named (--kafka or ZEROLOSS_KAFKA_BROKERS), the schema's table log with --table-log,
   * Redis Streams with --redis-streams, RabbitMQ's streams with --rabbitmq.
   */
  broker: BrokerInspector | undefined;
  /** Set when the named broker's transport has no inspector: what the reports say instead. */
  brokerNotRead: string | undefined;
  /** The broker's topic admin: Kafka's, or the table log's with --table-log. */
  admin: TopicAdmin | undefined;
  /** The named broker's group admin (`groups delete`). */
  groups: GroupAdmin | undefined;
  /** Created on first use. */
  publisher(): Publisher;
  /** The same broker's subscriber (the control channel's listener); created on first use. */
  subscriber(): Subscriber;
  /** The outbox reads of the control channel (resend requests, producer marks), and the groups' open gaps. */
  sequences: ProducerSequenceStore & Pick<SequenceStore, 'gapSummary'>;
  /** The state-column sources of --config-file, verified against the database on first use. */
  sources(): Promise<StateColumnSource[]>;
}

/** The flags that point the broker-side commands at another broker than Kafka (at most one of them). */
export const brokerOptions = {
  'table-log': { type: 'boolean' },
  'redis-streams': { type: 'string' },
  'redis-prefix': { type: 'string' },
  rabbitmq: { type: 'string' },
} as const;
export const brokerHelp = `  --table-log               the broker is the embedded table log in this schema (no Kafka)
  --redis-streams <url>     the broker is Redis Streams (redis://host:port/db), read with XRANGE
  --redis-prefix <prefix>   the Redis Streams key prefix (default zl)
  --rabbitmq <url>          the broker is RabbitMQ (amqp://…), its partition streams read without
                            consuming`;

export const NO_INSPECTOR = 'broker not read (the transport has no inspector)';

type BrokerValues = { 'table-log'?: boolean; 'redis-streams'?: string; 'redis-prefix'?: string; rabbitmq?: string };

/**
 * Opens what the operations commands share — the store of the schema, and the transport: Kafka when it is
 * named or `kafka: 'required'`, or the schema's table log with --table-log — runs `fn`, and closes everything
 * whatever happens.
 */
export async function withOps<T>(
  values: Parameters<typeof kafkaSettings>[0] & { pg?: string; schema?: string } & BrokerValues,
  kafka: 'required' | 'optional' | 'none',
  fn: (ctx: OpsContext) => Promise<T>,
): Promise<T> {
  const other = otherBroker(values);
  const named = kafka === 'required' || Boolean(values.kafka || process.env.ZEROLOSS_KAFKA_BROKERS);
  // Flags are checked before anything opens: a missing --kafka fails with nothing to close.
  const brokers = kafka !== 'none' && !other && named ? kafkaSettings(values) : undefined;
  const store = postgres(pgUrl(values.pg), { schema: values.schema, max: 4 });
  const open = (): Transport => (other ? other(store) : opsKafka(kafkaSettings(values)));
  // The broker the commands inspect; with 'none' they read the database alone.
  const inspected = kafka === 'none' ? undefined : other || brokers ? open() : undefined;
  // A publisher (repairs, resends, replays) may be asked for without a broker to inspect: Kafka then.
  let publishing: Transport | undefined;
  let sources: Promise<StateColumnSource[]> | undefined;
  const ctx: OpsContext = {
    schema: store.schema,
    db: store.db,
    store: store.operations,
    deadLetters: store.deadLetters,
    broker: inspected?.inspector,
    brokerNotRead: inspected && !inspected.inspector ? NO_INSPECTOR : undefined,
    admin: inspected?.admin,
    groups: inspected?.groups,
    publisher() {
      publishing ??= inspected ?? open();
      return publishing.publisher;
    },
    subscriber() {
      publishing ??= inspected ?? open();
      return publishing.subscriber;
    },
    sequences: store.sequences,
    sources() {
      sources ??= configuredSources(store, values['config-file']);
      return sources;
    },
  };
  try {
    return await fn(ctx);
  } finally {
    await closeAll(store, [inspected, publishing]);
  }
}

/** The transport named by --table-log, --redis-streams or --rabbitmq, if one is; refuses two brokers at once. */
function otherBroker(values: Parameters<typeof kafkaSettings>[0] & BrokerValues): ((store: Store) => Transport) | undefined {
  const given = [
    values['table-log'] === true && '--table-log',
    values['redis-streams'] !== undefined && '--redis-streams',
    values.rabbitmq !== undefined && '--rabbitmq',
    values.kafka !== undefined && '--kafka',
  ].filter((f): f is string => typeof f === 'string');
  if (given.length > 1) throw new ZerolossError('ZL_INVALID_CONFIG', `name one broker, not ${given.join(' and ')}`);
  if (values['redis-prefix'] !== undefined && values['redis-streams'] === undefined) {
    throw new ZerolossError('ZL_INVALID_CONFIG', '--redis-prefix goes with --redis-streams <url>');
  }
  const redisUrl = values['redis-streams'];
  if (redisUrl !== undefined) return () => redisStreams(redisUrl, { prefix: values['redis-prefix'] });
  const amqpUrl = values.rabbitmq;
  if (amqpUrl !== undefined) return () => rabbitmq(amqpUrl);
  if (values['table-log'] === true) return (store) => tableLog(store);
  return undefined;
}

function opsKafka(connection: ReturnType<typeof kafkaSettings>): Transport {
  return kafka({ ...connection, publisher: { clientId: 'zeroloss-ops' } });
}

async function closeAll(store: Store, transports: Array<Transport | undefined>): Promise<void> {
  for (const transport of new Set(transports)) await transport?.close().catch(() => {});
  await store.close().catch(() => {});
}
