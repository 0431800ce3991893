import { freePort } from '../infra/services/port-open.ts';
import { BROKERS, down, up } from '../infra/kafka/kafka.ts';
import { startPostgresInstance, type PostgresInstance } from '../infra/services/postgres-instance.ts';
import { startRabbitMqInstance, type RabbitMqInstance } from '../infra/services/rabbitmq-instance.ts';
import { startRedisInstance, type RedisInstance } from '../infra/services/redis-instance.ts';
import { TcpProxy } from './tcp-proxy.ts';

/** 'none': the run's transport is not Kafka, and no Kafka is used at all. */
export type KafkaMode = 'cluster' | 'single' | 'none';

/** What carries the messages between relays and consumers. */
export type TransportKind = 'kafka' | 'redis' | 'rabbitmq' | 'table-log';
export const TRANSPORTS: readonly TransportKind[] = ['kafka', 'redis', 'rabbitmq', 'table-log'];

/**
 * The broker of a Redis Streams or RabbitMQ run: a throwaway server on its own ports, which the nemesis
 * may stop, restart and kill. Redis persists every write before it replies (appendonly yes, appendfsync
 * always): the setting under which a reply to XADD is the promise (docs/transports.md).
 */
export type OwnBroker = { kind: 'redis'; redis: RedisInstance } | { kind: 'rabbitmq'; rabbitmq: RabbitMqInstance };

/**
 * Everything one fault-suite run works on. Postgres and Redis are throwaway instances on free ports (the
 * machine's shared 5432 and 6379 are never touched), so the nemesis may restart, stop and flush them.
 *
 * Network faults need a hop the suite controls between the clients (relays, consumers) and the servers.
 * Postgres: one proxy in front of the instance; relays and consumers connect through it, while the
 * workload and the checker connect directly (a cut stands for the clients' network, not the database).
 * Kafka: a plain proxy in front of a broker does not work, because clients take broker addresses from
 * metadata and would then connect around it. So the cluster runs the 'proxied' properties variant: each
 * node has a third listener whose advertised address is a proxy port (9095 + 1000n -> 9094 + 1000n); clients that
 * bootstrap there only ever learn proxy addresses, and every byte between them and any broker crosses a
 * proxy. Inter-broker replication and the controller quorum stay on their own, unproxied listeners, so a
 * network fault separates clients from the cluster without also partitioning the cluster itself. The
 * checker reads through the plain listeners. The shared single node (9092) is never reconfigured: in
 * 'single' mode there are no Kafka proxies, and scenarios that need them or a cluster refuse to run.
 *
 * With `--transport redis|rabbitmq` no Kafka is used ('none'); the broker is a throwaway server of that
 * kind (`broker`), reached directly: its faults are restarts and kills, not network ones. With
 * `--transport table-log` there is no broker at all: the log is tables of the scenario's schema in the
 * throwaway Postgres, so a Postgres fault is a fault of the transport too.
 */
export interface Environment {
  transport: TransportKind;
  kafkaMode: KafkaMode;
  /** Direct (unproxied) bootstrap, for the harness's own admin and reads. */
  kafkaDirect: string[];
  /** What relays and consumers use. */
  kafkaClients: string[];
  kafkaProxies: TcpProxy[];
  postgres: PostgresInstance;
  pgProxy: TcpProxy;
  /** Through the proxy: relays and consumers. */
  pgClientUrl: string;
  redis: RedisInstance;
  /** The broker when the transport is not Kafka. */
  broker?: OwnBroker;
  close(): Promise<void>;
}

/**
 * Settings of the suite's Postgres for `--relay-mode wal`: logical decoding on, room for every relay's
 * replication connection, and a wal_sender_timeout short enough that a SIGSTOPped slot holder loses the
 * slot within a scenario (relay-zombie freezes it for 15 s).
 */
export const WAL_POSTGRES_SETTINGS = {
  wal_level: 'logical',
  max_wal_senders: 20,
  max_replication_slots: 20,
  // 5 s was too short on a loaded 2-core machine: a relay replaying a backlog did not answer the server's
  // keepalive in time, and every reading was ended after 5 s (see docs/reliability.md).
  wal_sender_timeout: '10s',
} as const;

export async function startEnvironment(options: {
  kafka: KafkaMode;
  transport?: TransportKind;
  /** Start Postgres with logical decoding (WAL_POSTGRES_SETTINGS), for WAL relays. */
  logicalDecoding?: boolean;
  log: (line: string) => void;
}): Promise<Environment> {
  const transport = options.transport ?? 'kafka';
  const { log } = options;
  const cleanups: Array<() => Promise<unknown>> = [];
  let brokerStarting: Promise<{ broker: OwnBroker; cleanup: () => Promise<void> } | undefined> | undefined;
  const close = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: Error) => log(`cleanup: ${error.message}`));
  };
  try {
    let kafkaDirect: string[];
    let kafkaClients: string[];
    const kafkaProxies: TcpProxy[] = [];
    if (options.kafka === 'cluster') {
      const t0 = Date.now();
      // We own the cluster for this run: a leftover of another variant (or of a crashed run) is replaced.
      await up({ mode: 'cluster', variant: 'proxied' }).catch(async (error: Error) => {
        log(`kafka: ${error.message.split('\n')[0]}; restarting the cluster`);
        await down({ mode: 'cluster' });
        return up({ mode: 'cluster', variant: 'proxied' });
      });
      cleanups.push(() => down({ mode: 'cluster' }));
      log(`kafka: 3-node cluster ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      for (const n of [1, 2, 3]) {
        const proxy = new TcpProxy({ name: `kafka-${n}`, listenPort: 9095 + n * 1_000, targetPort: 9094 + n * 1_000 });
        await proxy.start();
        cleanups.push(() => proxy.close());
        kafkaProxies.push(proxy);
      }
      kafkaDirect = [...BROKERS.cluster];
      kafkaClients = kafkaProxies.map((p) => `127.0.0.1:${p.listenPort}`);
    } else if (options.kafka === 'none') {
      kafkaDirect = [];
      kafkaClients = [];
    } else {
      kafkaDirect = (process.env.ZL_KAFKA_BROKERS ?? BROKERS.single.join(',')).split(',');
      kafkaClients = kafkaDirect;
    }

    // The broker boots (RabbitMQ takes seconds) while Postgres does.
    brokerStarting = startOwnBroker(transport, log);
    brokerStarting.catch(() => {});
    const pgPort = await freePort();
    const t1 = Date.now();
    const postgres = await startPostgresInstance({
      port: pgPort,
      name: `faults-${pgPort}`,
      ...(options.logicalDecoding ? { settings: WAL_POSTGRES_SETTINGS } : {}),
    });
    cleanups.push(() => postgres.discard());
    const pgProxy = new TcpProxy({ name: 'postgres', listenPort: await freePort(), targetPort: pgPort });
    await pgProxy.start();
    cleanups.push(() => pgProxy.close());
    log(
      `postgres: throwaway instance on ${pgPort}${options.logicalDecoding ? ' (wal_level=logical)' : ''} (proxy ${pgProxy.listenPort}) in ${((Date.now() - t1) / 1000).toFixed(1)} s`,
    );

    const redis = await startRedisInstance({ port: await freePort() });
    cleanups.push(() => redis.stop());
    log(`redis: throwaway instance on ${redis.port}`);

    const started = await brokerStarting;
    brokerStarting = undefined;
    if (started) cleanups.push(started.cleanup);
    const broker = started?.broker;

    return {
      transport,
      kafkaMode: options.kafka,
      kafkaDirect,
      kafkaClients,
      kafkaProxies,
      postgres,
      pgProxy,
      pgClientUrl: `postgres://postgres@127.0.0.1:${pgProxy.listenPort}/postgres`,
      redis,
      ...(broker ? { broker } : {}),
      close,
    };
  } catch (error) {
    await brokerStarting?.then((b) => b?.cleanup()).catch(() => {});
    await close();
    throw error;
  }
}

/** The run's own Redis or RabbitMQ broker, when the transport is one of those. */
async function startOwnBroker(
  transport: TransportKind,
  log: (line: string) => void,
): Promise<{ broker: OwnBroker; cleanup: () => Promise<void> } | undefined> {
  const t0 = Date.now();
  if (transport === 'redis') {
    const redis = await startRedisInstance({ port: await freePort(), settings: { appendonly: 'yes', appendfsync: 'always' } });
    log(`broker: throwaway Redis on ${redis.port} (appendonly yes, appendfsync always) in ${redis.dir}`);
    return { broker: { kind: 'redis', redis }, cleanup: () => redis.remove() };
  }
  if (transport === 'rabbitmq') {
    const port = await freePort();
    let distPort = await freePort();
    while (distPort === port) distPort = await freePort();
    const rabbitmq = await startRabbitMqInstance({ port, distPort, name: `fx-${port}` });
    log(`broker: throwaway RabbitMQ node ${rabbitmq.node} on ${port} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return { broker: { kind: 'rabbitmq', rabbitmq }, cleanup: () => rabbitmq.remove() };
  }
  return undefined;
}
