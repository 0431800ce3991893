import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createConsumer, createOutbox, createRelay } from '../../src/index.ts';
import { postgres } from '../../src/entry/postgres.ts';
import { tableLog } from '../../src/entry/table-log.ts';
import { freePort } from '../helpers/consumer-workload.ts';
import { PG_URL, uniqueName } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

interface Served {
  child: ChildProcess;
  output: () => string;
  http: number;
  board: string;
}

/** `zeroloss serve` with the dashboard, on free ports; resolves once both listen. */
async function serve(args: string[]): Promise<Served> {
  const http = await freePort();
  const child = spawn(
    process.execPath,
    [MAIN, 'serve', ...args, '--http-host', '127.0.0.1', '--http-port', String(http), '--dashboard', '--dashboard-port', '0'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ZEROLOSS_LOG_FORMAT: 'json' } },
  );
  let output = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const board = await waitFor(() => /"url":"(http:\/\/127\.0\.0\.1:\d+)\/"/.exec(output)?.[1], {
    what: `the dashboard line (so far: ${output})`,
    timeoutMs: 30_000,
  });
  return { child, output: () => output, http, board };
}

async function stop(s: Served | undefined): Promise<void> {
  if (!s || s.child.exitCode !== null || s.child.signalCode !== null) return;
  const exited = new Promise((resolve) => s.child.once('exit', resolve));
  s.child.kill('SIGTERM');
  await exited;
}

const getJson = async (url: string) => {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

/**
 * `zeroloss serve` (probes, metrics, scheduled reconciliation, the dashboard) without Kafka: a team on
 * the embedded table log or on RabbitMQ runs the same operations daemon. It used to require --kafka.
 */
describe('serve without Kafka', () => {
  const schema = uniqueName('zlserve');
  const group = uniqueName('g');
  const store = postgres(PG_URL, { schema });
  const transport = tableLog(store);
  let served: Served | undefined;
  // Reconciliation every second over everything committed so far, so a run shows up within the test.
  const common = () => ['--pg', PG_URL, '--schema', schema, '--reconcile-every', '1s', '--reconcile-settle', '0s'];
  /** /readyz answers 200; the names of the checks it ran. */
  const readyChecks = async (s: Served) => {
    const ready = await getJson(`http://127.0.0.1:${s.http}/readyz`);
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    return Object.keys(ready.body.checks as object).sort();
  };

  before(async () => {
    await store.migrate();
    await transport.ensureTopic('orders', 2);
    await transport.ensureTopic('orders.dlq', 1);
    const outbox = createOutbox({ store, producerId: 'serve-test' });
    for (let i = 0; i < 4; i++) {
      await store.transaction((tx) => outbox.enqueue(tx, { topic: 'orders', key: `k-${i}`, type: 'placed', payload: { i } }));
    }
    const relay = createRelay({ store, transport, pollIntervalMs: 20 });
    const consumer = createConsumer({ store, transport, groupId: group, topics: ['orders'] });
    let applied = 0;
    consumer.handle('placed', async () => {
      applied++;
    });
    await relay.start();
    await consumer.start();
    try {
      await waitFor(() => applied >= 4, { what: 'four messages applied over the table log' });
    } finally {
      await consumer.stop();
      await relay.stop();
    }
  });
  after(async () => {
    await stop(served);
    await transport.close();
    await store.transaction((tx) => tx.query(`drop schema if exists "${schema}" cascade`)).catch(() => {});
    await store.close();
  });

  test('--table-log: ready with the table log as its broker, lag per partition read from it, reconciliation clean', async () => {
    served = await serve([...common(), '--table-log', '--group', group]);
    assert.deepEqual(await readyChecks(served), ['broker', 'database']);
    const overview = await waitFor(
      async () => {
        const o = (await getJson(`${served?.board}/api/overview`)).body as {
          groups: Array<{ group: string; lag: string; partitions: unknown[] }>;
          lastReconcile: Array<{ verdict: string }>;
        };
        return o.lastReconcile.length > 0 ? o : undefined;
      },
      { what: 'a scheduled reconciliation on the table log', timeoutMs: 20_000 },
    );
    const g = overview.groups.find((x) => x.group === group);
    assert.equal(g?.partitions.length, 2, 'both table-log partitions');
    assert.equal(g?.lag, '0');
    assert.equal(overview.lastReconcile[0]?.verdict, 'clean', served.output());
    await stop(served);
  });

  test('--rabbitmq: ready with the streams as its broker, the dashboard serves, reconciliation clean', async (t) => {
    // A schema of its own: the messages above went over the table log, and RabbitMQ, read now, has none of them.
    const own = postgres(PG_URL, { schema: uniqueName('zlserverm') });
    t.after(async () => {
      await own.transaction((tx) => tx.query(`drop schema if exists "${own.schema}" cascade`)).catch(() => {});
      await own.close();
    });
    await own.migrate();
    const args = common().map((a) => (a === schema ? own.schema : a));
    served = await serve([...args, '--rabbitmq', 'amqp://guest:guest@127.0.0.1:5672']);
    assert.deepEqual(await readyChecks(served), ['broker', 'database']);
    const page = await fetch(`${served.board}/`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(page.status, 200);
    const startedAt = Date.now();
    const run = await waitFor(
      async () => {
        const o = (await getJson(`${served?.board}/api/overview`)).body as { lastReconcile: Array<{ startedAt: string; verdict: string }> };
        return o.lastReconcile.find((r) => Date.parse(r.startedAt) >= startedAt - 1_000);
      },
      { what: 'a scheduled reconciliation with RabbitMQ named', timeoutMs: 20_000 },
    );
    assert.equal(run.verdict, 'clean', served.output());
    assert.ok(!/"level":50/.test(served.output()), `no error lines: ${served.output()}`);
    await stop(served);
  });
});
