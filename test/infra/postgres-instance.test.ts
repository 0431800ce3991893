import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, test } from 'node:test';
import pg from 'pg';
import { type PostgresInstance, startPostgresInstance } from '../../infra/services/postgres-instance.ts';
import { freePort, portOpen } from '../../infra/services/port-open.ts';

// Throwaway servers are named (tests and benchmarks reuse a data directory across runs), and a run that is
// killed leaves its server running: pg_ctl starts it detached. The next run picks a new free port for the
// same name and must not fail on the server it finds in that data directory.

const INSTANCE = new URL('../../infra/services/postgres-instance.ts', import.meta.url).href;
const name = `instance-leftover-${process.pid}`;
const started: PostgresInstance[] = [];

/** A run of its own that starts the instance and waits to be killed; resolves once the server is up. */
async function runHolding(port: number): Promise<ChildProcess> {
  const code = `import { startPostgresInstance } from ${JSON.stringify(INSTANCE)};
    await startPostgresInstance({ port: ${port}, name: ${JSON.stringify(name)} });
    process.stdout.write('up\\n');
    setInterval(() => {}, 60_000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('up')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the holding run exited with ${code} before its server was up`)));
  });
  return child;
}

async function killed(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query('select 1 as one')).rows[0]?.one === 1;
  } finally {
    await client.end();
  }
}

after(async () => {
  for (const instance of started) await instance.discard();
});

test('a server left running by a killed run is stopped, and the instance starts on the new port', async () => {
  const oldPort = await freePort();
  const child = await runHolding(oldPort);
  await killed(child);
  assert.ok(await portOpen(oldPort), 'the killed run left its server running (the situation under test)');

  const newPort = await freePort();
  const instance = await startPostgresInstance({ port: newPort, name });
  started.push(instance);
  assert.ok(await answers(instance.url), 'the instance answers on the new port');
  assert.equal(await portOpen(oldPort), false, 'the leftover server is gone');
});

test('a server a live run still holds is not taken from it: the start is refused, saying who holds it', async () => {
  await started.pop()?.stop('fast');
  const holderPort = await freePort();
  const child = await runHolding(holderPort);
  try {
    await assert.rejects(
      startPostgresInstance({ port: await freePort(), name }),
      (error: Error) => error.message.includes(`process ${child.pid}`) && error.message.includes(String(holderPort)),
    );
    assert.ok(await portOpen(holderPort), "the live run's server still runs");
  } finally {
    await killed(child);
  }
  // Its holder dead, the next start takes the data directory over.
  const instance = await startPostgresInstance({ port: await freePort(), name });
  started.push(instance);
  assert.ok(await answers(instance.url));
});

test('discard stops the server and leaves nothing of the instance behind', async () => {
  const instance = started.pop();
  assert.ok(instance);
  await instance.discard();
  assert.equal(await portOpen(instance.port), false);
  for (const path of [instance.dataDir, `${instance.dataDir}.log`, `${instance.dataDir}.owner`])
    assert.equal(existsSync(path), false, path);
});
