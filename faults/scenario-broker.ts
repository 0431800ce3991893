import { createAdmin, ensureTopic } from '../src/adapters/kafka/kafka-admin.ts';
import { rabbitmq } from '../src/adapters/rabbitmq/rabbitmq-transport.ts';
import { redisStreams } from '../src/adapters/redis-streams/redis-streams-transport.ts';
import type { Environment } from './environment.ts';
import { describeRedisGroup } from './redis-group-state.ts';
import { readWholeRabbitTopic, readWholeRedisTopic, readWholeTableLog, readWholeTopic, type TopicRecord } from './topic-reader.ts';
import { pgDatabase } from '../src/adapters/postgres/pg-database.ts';
import { tableLog } from '../src/adapters/table-log/table-log-transport.ts';

/**
 * What a scenario needs of its run's broker, whichever transport it is: the topic and its dead-letter
 * topic made, what relays and consumers are told to connect to, the whole topic read back for the
 * checker, and the topics removed where the broker outlives the run.
 */
export interface ScenarioBroker {
  createTopics(topic: string, partitions: number): Promise<void>;
  /** ZL_FX_TRANSPORT and ZL_FX_BROKERS for faults/consumer-worker.ts. */
  consumerEnv: Record<string, string>;
  /** For relayGroup: Kafka's bootstrap, or the transport of faults/relay-worker.ts. */
  relay: { brokers: string[]; transport?: { kind: 'redis' | 'rabbitmq' | 'table-log'; url: string } };
  readTopic(topic: string): Promise<TopicRecord[]>;
  /** Deletes the topics when the broker is shared (Kafka's single node); throwaway brokers go whole. */
  cleanup(topic: string): Promise<void>;
  /** Where the group stands, read from the broker, for a drain that stalled (Redis Streams only so far). */
  describeGroup?(topic: string, groupId: string): Promise<string>;
}

export function scenarioBroker(env: Environment, schema: string): ScenarioBroker {
  // The table log is tables of the scenario's own schema, in the run's Postgres: relays and consumers
  // reach it through the proxy like their other Postgres connections; the harness reads it directly.
  if (env.transport === 'table-log') {
    return {
      async createTopics(topic, partitions) {
        const db = pgDatabase({ connectionString: env.postgres.url, max: 1 });
        try {
          const transport = tableLog({ db, schema });
          await transport.ensureTopic(topic, partitions);
          await transport.ensureTopic(`${topic}.dlq`, 3);
        } finally {
          await db.close();
        }
      },
      consumerEnv: { ZL_FX_TRANSPORT: 'table-log', ZL_FX_BROKERS: env.pgClientUrl },
      relay: { brokers: [], transport: { kind: 'table-log', url: env.pgClientUrl } },
      readTopic: (topic) => readWholeTableLog(topic, schema, env.postgres.url),
      cleanup: async () => {},
    };
  }
  const broker = env.broker;
  if (broker === undefined) {
    return {
      async createTopics(topic, partitions) {
        const admin = createAdmin(env.kafkaDirect, 'zl-fx-setup');
        try {
          await ensureTopic(admin, { topic, partitions });
          await ensureTopic(admin, { topic: `${topic}.dlq`, partitions: 3 });
        } finally {
          await admin.close();
        }
      },
      consumerEnv: { ZL_FX_TRANSPORT: 'kafka', ZL_FX_BROKERS: env.kafkaClients.join(',') },
      relay: { brokers: env.kafkaClients },
      readTopic: (topic) => readWholeTopic(topic, env.kafkaDirect),
      async cleanup(topic) {
        if (env.kafkaMode !== 'single') return;
        const admin = createAdmin(env.kafkaDirect, 'zl-fx-cleanup');
        await admin.deleteTopics({ topics: [topic, `${topic}.dlq`] }).catch(() => {});
        await admin.close().catch(() => {});
      },
    };
  }
  const url = broker.kind === 'redis' ? broker.redis.url : broker.rabbitmq.url;
  return {
    async createTopics(topic, partitions) {
      const transport = broker.kind === 'redis' ? redisStreams(url) : rabbitmq(url);
      try {
        await transport.ensureTopic(topic, partitions);
        await transport.ensureTopic(`${topic}.dlq`, 3);
      } finally {
        await transport.close();
      }
    },
    consumerEnv: { ZL_FX_TRANSPORT: broker.kind, ZL_FX_BROKERS: url },
    relay: { brokers: [], transport: { kind: broker.kind, url } },
    readTopic: (topic) => (broker.kind === 'redis' ? readWholeRedisTopic(topic, url) : readWholeRabbitTopic(topic, url)),
    cleanup: async () => {},
    ...(broker.kind === 'redis' ? { describeGroup: (topic: string, groupId: string) => describeRedisGroup(url, topic, groupId) } : {}),
  };
}
