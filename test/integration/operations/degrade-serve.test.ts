import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PostgresBacklogStore } from '../../../src/adapters/postgres/postgres-backlog-store.ts';
import { PostgresInboxStore } from '../../../src/adapters/postgres/postgres-inbox-store.ts';
import { tableLog } from '../../../src/adapters/table-log/table-log-transport.ts';
import { uniqueId, zlRecord } from '../../helpers/consumer-fixtures.ts';
import { freePort } from '../../helpers/consumer-workload.ts';
import { PG_URL, freshSchema } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

let env: Awaited<ReturnType<typeof freshSchema>>;
let child: ChildProcess | undefined;
before(async () => {
  env = await freshSchema('zldegs');
});
after(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child?.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  await env.cleanup();
});

/** The backlog policy as `zeroloss serve` runs it: degrades when the group's lag is high, restores when it is low. */
test('serve --degrade-group turns the switch and divert on at high lag and off again at low lag', async () => {
  const transport = tableLog({ db: env.db, schema: env.schema });
  const backlog = new PostgresBacklogStore(env.db, { schema: env.schema });
  const inbox = new PostgresInboxStore(env.db, { schema: env.schema });
  const topic = uniqueId('orders');
  const group = uniqueId('g');
  await transport.ensureTopic(topic, 1);
  for (const o of await transport.publisher.publish(
    Array.from({ length: 8 }, (_, n) => zlRecord({ topic, key: `k${n}`, type: 'order.paid', payload: { n } })),
  ))
    assert.ok(o.ok);
  await inbox.storeOffset(env.db, group, topic, 0, 0n);

  const http = await freePort();
  let output = '';
  child = spawn(
    process.execPath,
    [
      MAIN,
      'serve',
      '--pg',
      PG_URL,
      '--schema',
      env.schema,
      '--table-log',
      '--http-host',
      '127.0.0.1',
      '--http-port',
      String(http),
      '--reconcile-every',
      'off',
      '--nightly-hour',
      'off',
      '--degrade-group',
      group,
      '--degrade-at',
      '5',
      '--restore-at',
      '1',
      '--degrade-switch',
      'non-core',
      '--degrade-divert',
      `${topic}:points.bonus:${topic}.standby`,
      '--degrade-every',
      '200ms',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ZEROLOSS_LOG_FORMAT: 'json' } },
  );
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const switchOn = async () => (await backlog.switches()).find((s) => s.name === 'non-core')?.on;
  const diverts = async () =>
    (await env.pool.query(`select msg_type, target_topic from "${env.schema}".topic_divert where topic = $1`, [topic])).rows;

  // The policy's audit row is written after the switch and the divert: once it is there, both are.
  const audited = async () =>
    (
      await env.pool.query(`select action, details->>'lag' as lag from "${env.schema}".operation_audit where subject = $1 order by id`, [
        `group:${group}`,
      ])
    ).rows as Array<{ action: string; lag: string }>;
  await waitFor(async () => (await audited()).length === 1, {
    what: `the policy degraded at lag 8 (serve said: ${output})`,
    timeoutMs: 40_000,
  });
  assert.equal(await switchOn(), true);
  assert.deepEqual(await diverts(), [{ msg_type: 'points.bonus', target_topic: `${topic}.standby` }]);

  await inbox.storeOffset(env.db, group, topic, 0, 8n);
  await waitFor(async () => (await audited()).length === 2, { what: 'the policy restored at lag 0' });
  assert.equal(await switchOn(), false);
  assert.deepEqual(await diverts(), []);
  assert.deepEqual(await audited(), [
    { action: 'backlog.policy.degrade', lag: '8' },
    { action: 'backlog.policy.restore', lag: '0' },
  ]);
  assert.match(output, /backlog policy: degraded/);
});
