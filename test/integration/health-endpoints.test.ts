import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startPostgresInstance, type PostgresInstance } from '../../infra/services/postgres-instance.ts';
import { KafkaSubscriber } from '../../src/adapters/kafka/kafka-subscriber.ts';
import { migrate } from '../../src/adapters/postgres/migrations.ts';
import { pgDatabase } from '../../src/adapters/postgres/pg-database.ts';
import type { Consumer } from '../../src/consumer/consumer.ts';
import type { Database } from '../../src/ports/sql-executor.ts';
import { BROKERS, createTopics, uniqueId } from '../helpers/consumer-fixtures.ts';
import { freePort } from '../helpers/consumer-workload.ts';
import { RelayProcess } from '../helpers/relay-process.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { testConsumer } from '../helpers/test-consumer.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

interface Probe {
  status: number;
  body: string;
}

async function probe(port: number, path: string): Promise<Probe> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

function readyz(port: number) {
  return probe(port, '/readyz').then((p) => ({
    status: p.status,
    ...(JSON.parse(p.body) as { ready: boolean; checks: Record<string, { ok: boolean; detail?: string }> }),
  }));
}

/**
 * Issue 13, acceptance 4: `zeroloss relay` and `zeroloss serve` (real child processes) and a consumer
 * with the `health` option, each bound to 0.0.0.0 against a throwaway Postgres and the shared Kafka.
 * Readiness turns false naming the database when that Postgres stops (liveness stays true) and true
 * again once it is back. One stop and start serves all three, to keep the file short.
 */
describe('health, readiness and metrics endpoints', () => {
  let instance: PostgresInstance;
  let db: Database;
  let relay: RelayProcess;
  let serve: ChildProcess | undefined;
  let serveOutput = '';
  let consumer: Consumer;
  const schema = uniqueId('zlh').replaceAll('-', '_');
  const topic = uniqueId('zl-health');
  const ports = { relay: 0, serve: 0 };

  before(async () => {
    instance = await startPostgresInstance({ port: await freePort(), name: `health-${process.pid}` });
    db = pgDatabase({ connectionString: instance.url, onError: () => {} });
    await migrate(db, schema);
    await createTopics([topic], 1);
    ports.relay = await freePort();
    ports.serve = await freePort();
    relay = new RelayProcess({
      pgUrl: instance.url,
      schema,
      brokers: BROKERS,
      extra: ['--http-host', '0.0.0.0', '--http-port', String(ports.relay)],
    });
    relay.start();
    const args = [MAIN, 'serve', '--pg', instance.url, '--schema', schema, '--kafka', BROKERS.join(',')];
    args.push('--metrics-host', '0.0.0.0', '--metrics-port', String(ports.serve), '--collect-every', '1s');
    args.push('--reconcile-every', 'off', '--nightly-hour', 'off');
    serve = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer) => {
      serveOutput = (serveOutput + chunk.toString()).slice(-20_000);
    };
    serve.stdout?.on('data', keep);
    serve.stderr?.on('data', keep);
    consumer = testConsumer({
      subscriber: new KafkaSubscriber({ brokers: BROKERS, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, maxWaitMs: 100 }),
      db,
      schema,
      config: { groupId: uniqueId('g'), topics: [topic] },
      health: { host: '0.0.0.0', port: 0 },
    });
    consumer.handle('noop', async () => {});
    await consumer.start();
  });

  after(async () => {
    await consumer?.stop();
    await relay?.stop();
    if (serve && serve.exitCode === null) {
      const exited = new Promise((resolve) => serve?.once('exit', resolve));
      serve.kill('SIGTERM');
      await exited;
    }
    await instance?.start();
    await db?.close();
    await instance?.stop();
  });

  test('ready, then not ready naming the database while Postgres is down, then ready again', async () => {
    const endpoint = consumer.health().endpoint;
    assert.equal(endpoint?.host, '0.0.0.0', 'the consumer listens on every address');
    const targets = { relay: ports.relay, serve: ports.serve, consumer: endpoint?.port ?? 0 };
    const output = () => `relay output:\n${relay.output}\nserve output:\n${serveOutput}`;

    for (const [name, port] of Object.entries(targets)) {
      await waitFor(async () => (await readyz(port)).status === 200, { timeoutMs: 30_000, what: `${name} ready` }).catch((e) => {
        throw new Error(`${(e as Error).message}\n${output()}`);
      });
      assert.equal((await probe(port, '/healthz')).status, 200, `${name} alive`);
      assert.equal((await probe(port, '/anything-else')).status, 404, `${name} serves nothing else`);
      const metrics = await probe(port, '/metrics');
      assert.equal(metrics.status, 200);
      const series = { relay: 'zeroloss_relay_', serve: 'zeroloss_', consumer: 'zeroloss_consumer_' }[name] as string;
      assert.ok(metrics.body.includes(series), `${name} /metrics has ${series} series`);
    }
    const ready = await readyz(targets.relay);
    assert.deepEqual(Object.keys(ready.checks).sort(), ['broker', 'database', 'loop']);

    await instance.stop('immediate');
    for (const [name, port] of Object.entries(targets)) {
      const down = await waitFor(
        async () => {
          const r = await readyz(port);
          return r.status === 503 && r.checks.database?.ok === false ? r : undefined;
        },
        { timeoutMs: 20_000, what: `${name} not ready with Postgres down` },
      );
      assert.equal(down.ready, false);
      assert.ok(down.checks.database?.detail, `${name} says why the database check failed`);
      assert.doesNotMatch(JSON.stringify(down), /postgres:\/\//, 'no connection URL in the answer');
      assert.equal((await probe(port, '/healthz')).status, 200, `${name} stays alive`);
    }

    await instance.start();
    for (const [name, port] of Object.entries(targets)) {
      await waitFor(async () => (await readyz(port)).status === 200, { timeoutMs: 30_000, what: `${name} ready again` });
    }
  });
});
