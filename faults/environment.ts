import { rmSync } from 'node:fs';
import { freePort } from '../infra/services/port-open.ts';
import { BROKERS, down, up } from '../infra/kafka/kafka.ts';
import { startPostgresInstance, type PostgresInstance } from '../infra/services/postgres-instance.ts';
import { startRedisInstance, type RedisInstance } from '../infra/services/redis-instance.ts';
import { TcpProxy } from './tcp-proxy.ts';

export type KafkaMode = 'cluster' | 'single';

/**
 * Everything one fault-suite run works on. Postgres and Redis are throwaway instances on free ports (the
 * machine's shared 5432 and 6379 are never touched), so the nemesis may restart, stop and flush them.
 *
 * Network faults need a hop the suite controls between the clients (relays, consumers) and the servers.
 * Postgres: one proxy in front of the instance; relays and consumers connect through it, while the
 * workload and the checker connect directly (a cut stands for the clients' network, not the database).
 * Kafka: a plain proxy in front of a broker does not work, because clients take broker addresses from
 * metadata and would then connect around it. So the cluster runs the 'proxied' properties variant: each
 * node has a third listener whose advertised address is a proxy port (<n>9095 -> <n>9094); clients that
 * bootstrap there only ever learn proxy addresses, and every byte between them and any broker crosses a
 * proxy. Inter-broker replication and the controller quorum stay on their own, unproxied listeners, so a
 * network fault separates clients from the cluster without also partitioning the cluster itself. The
 * checker reads through the plain listeners. The shared single node (9092) is never reconfigured: in
 * 'single' mode there are no Kafka proxies, and scenarios that need them or a cluster refuse to run.
 */
export interface Environment {
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
  close(): Promise<void>;
}

export async function startEnvironment(options: { kafka: KafkaMode; log: (line: string) => void }): Promise<Environment> {
  const { log } = options;
  const cleanups: Array<() => Promise<unknown>> = [];
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
        const proxy = new TcpProxy({ name: `kafka-${n}`, listenPort: n * 10_000 + 9095, targetPort: n * 10_000 + 9094 });
        await proxy.start();
        cleanups.push(() => proxy.close());
        kafkaProxies.push(proxy);
      }
      kafkaDirect = [...BROKERS.cluster];
      kafkaClients = kafkaProxies.map((p) => `127.0.0.1:${p.listenPort}`);
    } else {
      kafkaDirect = (process.env.ZL_KAFKA_BROKERS ?? BROKERS.single.join(',')).split(',');
      kafkaClients = kafkaDirect;
    }

    const pgPort = await freePort();
    const t1 = Date.now();
    const postgres = await startPostgresInstance({ port: pgPort, name: `faults-${pgPort}` });
    cleanups.push(async () => {
      await postgres.stop('immediate');
      rmSync(postgres.dataDir, { recursive: true, force: true });
      rmSync(`${postgres.dataDir}.log`, { force: true });
    });
    const pgProxy = new TcpProxy({ name: 'postgres', listenPort: await freePort(), targetPort: pgPort });
    await pgProxy.start();
    cleanups.push(() => pgProxy.close());
    log(`postgres: throwaway instance on ${pgPort} (proxy ${pgProxy.listenPort}) in ${((Date.now() - t1) / 1000).toFixed(1)} s`);

    const redis = await startRedisInstance({ port: await freePort() });
    cleanups.push(() => redis.stop());
    log(`redis: throwaway instance on ${redis.port}`);

    return {
      kafkaMode: options.kafka,
      kafkaDirect,
      kafkaClients,
      kafkaProxies,
      postgres,
      pgProxy,
      pgClientUrl: `postgres://postgres@127.0.0.1:${pgProxy.listenPort}/postgres`,
      redis,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
