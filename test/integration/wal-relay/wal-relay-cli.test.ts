import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { pgDatabase } from '../../../src/adapters/postgres/pg-database.ts';
import { walDoctor } from '../../../src/adapters/postgres/wal/wal-doctor.ts';
import { createTopic, KAFKA_BROKERS, readTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { PG_URL } from '../../helpers/pg.ts';
import { checkTopic } from '../../helpers/producer-workload.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { Child } from './child-process.ts';
import { outboxIds, startWalPostgres, walSchema } from './wal-postgres.ts';

/**
 * `zeroloss relay --mode wal` and `zeroloss doctor --pg` as an operator runs them: nothing creates a slot
 * unless asked, a standby CLI relay takes over from a SIGKILLed holder, doctor reports the slot, and
 * --drop-slot drops it.
 */
const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));
const exec = promisify(execFile);

let instance: PostgresInstance;
before(async () => {
  instance = await startWalPostgres('cli');
});
after(async () => {
  await instance?.stop('fast');
});

function relay(url: string, schema: string, ...extra: string[]): Child {
  return new Child([MAIN, 'relay', '--mode', 'wal', '--pg', url, '--schema', schema, '--kafka', KAFKA_BROKERS.join(','), ...extra]);
}

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [MAIN, ...args], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('relay --mode wal and doctor --pg', () => {
  test('no slot unless asked; a standby takes over from the SIGKILLed holder; doctor sees the slot; --drop-slot drops it', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    const topic = uniqueTopic('zl-wal-cli');
    await createTopic(topic, 2);
    const slots = async () =>
      (await s.pool.query('select slot_name, active from pg_replication_slots where slot_name = $1', [s.wal.slot])).rows;
    const a = relay(s.url, s.schema).start();
    let b: Child | undefined;
    try {
      await waitFor(() => a.output.includes('does not exist'), { what: 'the relay refusing to run without a slot', timeoutMs: 20_000 });
      assert.match(a.output, /--create-slot/);
      assert.deepEqual(await slots(), [], 'no slot created silently');
      // It keeps trying (a slot may be created by another instance): it stands by or takes the slot once there is one.
      b = relay(s.url, s.schema, '--create-slot').start();
      await waitFor(() => /streaming/.test(a.output) || /streaming/.test(b?.output ?? ''), {
        what: 'one relay holding the slot',
        timeoutMs: 20_000,
      });
      const [holder, standby] = /streaming/.test(a.output) ? [a, b] : [b, a];
      await waitFor(() => standby.output.includes('standby'), { what: 'the other standing by', timeoutMs: 20_000 });
      const outbox = testOutbox({ schema: s.schema });
      for (let i = 0; i < 10; i++)
        await s.store.transaction((tx) => outbox.enqueue(tx, { topic, key: `k${i % 2}`, type: 't', payload: { i } }));
      await holder.kill();
      const killedAt = Date.now();
      await waitFor(() => standby.output.includes('streaming'), { what: 'the standby taking over', timeoutMs: 10_000, intervalMs: 10 });
      console.log(`takeover ${Date.now() - killedAt} ms after SIGKILL`);
      for (let i = 10; i < 20; i++)
        await s.store.transaction((tx) => outbox.enqueue(tx, { topic, key: `k${i % 2}`, type: 't', payload: { i } }));
      const records = await readTopic(topic, { done: (r) => new Set(r.map((x) => x.headers['zl-id'])).size >= 20, timeoutMs: 15_000 });
      const check = checkTopic(await outboxIds(s.pool, s.schema), new Set(), records);
      assert.deepEqual({ lost: check.lost.length, order: check.orderViolations }, { lost: 0, order: 0 });

      await standby.kill('SIGTERM');
      await waitFor(async () => (await slots())[0]?.active === false, { what: 'the slot released' });
      const idle = await cli('doctor', '--pg', s.url, '--json');
      assert.equal(idle.code, 0, 'warnings only');
      const report = JSON.parse(idle.stdout);
      assert.equal(report.postgres.walLevel, 'logical');
      assert.ok(
        report.findings.some((f: { setting: string }) => f.setting === 'max_slot_wal_keep_size'),
        'unlimited max_slot_wal_keep_size warned',
      );
      const inactive = report.findings.find((f: { subject: string }) => f.subject === `slot:${s.wal.slot}`);
      assert.equal(inactive?.setting, 'active', 'the slot nobody reads warned');

      const dropped = await cli('relay', '--mode', 'wal', '--drop-slot', '--pg', s.url, '--schema', s.schema);
      assert.equal(dropped.code, 0, dropped.stderr);
      assert.deepEqual(await slots(), []);
    } finally {
      await a.kill();
      await b?.kill();
      await s.cleanup();
    }
  });

  test('the doctor check fails a database without logical decoding (the shared server on 5432)', async () => {
    const db = pgDatabase({ connectionString: PG_URL, max: 1 });
    try {
      const report = await walDoctor(db);
      // The shared server runs with the default wal_level (replica); were it changed, this test says so.
      assert.notEqual(report.walLevel, 'logical', 'the shared Postgres is expected to run without logical decoding');
      assert.equal(report.ok, false);
      const finding = report.findings.find((f) => f.setting === 'wal_level');
      assert.deepEqual({ severity: finding?.severity, actual: finding?.actual }, { severity: 'error', actual: report.walLevel });
    } finally {
      await db.close();
    }
  });
});
