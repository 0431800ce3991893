import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { postgresWalShards } from '../../../src/adapters/postgres/wal/postgres-wal-shards.ts';
import { walShardOf } from '../../../src/core/wal-shard.ts';
import { createTopic, KAFKA_BROKERS, readTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { checkTopic, enqueueWorkload } from '../../helpers/producer-workload.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { Child } from './child-process.ts';
import { outboxIds, startWalPostgres, walSchema } from './wal-postgres.ts';

/**
 * The outbox in two shards read by two relay processes (docs/wal-relay.md, Shards). Counts come from the
 * outbox table and from reading the topic back, never from the relays' own counters.
 */
const CHILD = fileURLToPath(new URL('./wal-shard-child.ts', import.meta.url));
const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));
const exec = promisify(execFile);

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [MAIN, ...args], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let instance: PostgresInstance;
before(async () => {
  instance = await startWalPostgres('shards');
});
after(async () => {
  await instance?.stop('fast');
});

/** What a child printed last: its instance id and the shards it reads. */
function state(c: Child): { id: string | undefined; holding: string | undefined } {
  const id = /instance (\S+)/.exec(c.output)?.[1];
  const all = [...c.output.matchAll(/holding ([\d,]*)\n/g)];
  return { id, holding: all.length > 0 ? (all[all.length - 1]?.[1] ?? '') : undefined };
}

describe('WAL relay shards', () => {
  test('2 shards, 2 relays: a newcomer is handed a shard while writers commit; one shard each, both streamed; SIGKILL one: the other takes its shard < 10 s; 0 lost, per-key order', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    const shards = postgresWalShards(s.store, { url: s.url });
    const topic = uniqueTopic('zl-wal-shards');
    await createTopic(topic, 4);
    const children: Child[] = [];
    const start = () => {
      const c = new Child([CHILD], { ZL_PG_URL: s.url, ZL_SCHEMA: s.schema, ZL_KAFKA_BROKERS: KAFKA_BROKERS.join(',') }).start();
      children.push(c);
      return c;
    };
    try {
      const created = await shards.createShards(2, 'test');
      assert.deepEqual(created.created, [`zeroloss_${s.schema}_s0`, `zeroloss_${s.schema}_s1`]);
      // The JavaScript mapping is the publications' row filter, key for key.
      const keys = Array.from({ length: 200 }, (_, i) => `key-${i}`);
      const { rows } = await s.pool.query<{ k: string; shard: number }>(
        'select k, (hashtext(k) & 2147483647) % 2 as shard from unnest($1::text[]) k',
        [keys],
      );
      for (const r of rows) assert.equal(r.shard, walShardOf(r.k, 2), r.k);

      const outbox = testOutbox({ schema: s.schema });
      const a = start();
      await waitFor(() => state(a).holding === '0,1', { what: `relay a reading both shards (${a.output.slice(-400)})`, timeoutMs: 30_000 });
      // Writers keep committing while b joins: the shard handed over is one a is streaming.
      const rolledBack = new Set<string>();
      let joined = false;
      const joining = (async () => {
        for (let round = 0; !joined; round++) {
          const burst = await enqueueWorkload({
            pool: s.pool,
            outbox,
            topic,
            messages: 40,
            keys: 100,
            workers: 4,
            rollbackRate: 0.05,
            seed: 100 + round,
          });
          for (const id of burst.rolledBack) rolledBack.add(id);
        }
      })();
      const b = start();
      // The newcomer gets a fair share: a hands one shard over once its batches in flight are confirmed.
      try {
        await waitFor(() => state(b).holding?.length === 1 && state(a).holding?.length === 1, {
          what: `one shard each (a: ${a.output.slice(-300)} b: ${b.output.slice(-300)})`,
          timeoutMs: 30_000,
        });
      } finally {
        joined = true;
        await joining;
      }
      // The server agrees: both slots read, each by another relay (application_name = instance id).
      const holders = await shards.list();
      assert.deepEqual(
        holders.map((x) => x.active),
        [true, true],
      );
      assert.deepEqual(new Set(holders.map((x) => x.holder)), new Set([state(a).id, state(b).id]));

      const first = await enqueueWorkload({
        pool: s.pool,
        outbox,
        topic,
        messages: 600,
        keys: 100,
        workers: 8,
        rollbackRate: 0.05,
        seed: 15,
      });
      // Both shards streamed: every row of the burst sent while each relay reads one shard.
      await waitFor(
        async () => (await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox where state <> 1`)).rows[0].n === 0,
        { what: 'the first burst sent', timeoutMs: 30_000 },
      );
      assert.equal(state(a).holding?.length, 1);
      assert.equal(state(b).holding?.length, 1);

      // A second burst, and the kill while it streams.
      const victim = a;
      const survivor = b;
      const writing = enqueueWorkload({ pool: s.pool, outbox, topic, messages: 600, keys: 100, workers: 8, rollbackRate: 0.05, seed: 16 });
      const before = (await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox`)).rows[0].n;
      await waitFor(async () => (await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox`)).rows[0].n > before + 100, {
        what: 'the second burst under way',
        timeoutMs: 20_000,
        intervalMs: 5,
      });
      await victim.kill('SIGKILL');
      const killedAt = Date.now();
      await waitFor(() => state(survivor).holding === '0,1', {
        what: `the survivor reading both shards (${survivor.output.slice(-400)})`,
        timeoutMs: 20_000,
        intervalMs: 20,
      });
      const takeover = Date.now() - killedAt;
      const second = await writing;

      const ids = await outboxIds(s.pool, s.schema);
      for (const id of [...first.rolledBack, ...second.rolledBack]) rolledBack.add(id);
      const records = await readTopic(topic, {
        done: (r) => new Set(r.map((x) => x.headers['zl-id'])).size >= ids.size,
        timeoutMs: 30_000,
      });
      const check = checkTopic(ids, rolledBack, records);
      console.log(`committed ${check.committed}, on topic ${check.onTopic}, duplicates ${check.duplicates}, takeover ${takeover} ms`);
      assert.deepEqual(
        { committed: check.committed, lost: check.lost.length, phantom: check.phantom.length, orderViolations: check.orderViolations },
        { committed: ids.size, lost: 0, phantom: 0, orderViolations: 0 },
      );
      assert.ok(takeover < 10_000, `takeover ${takeover} ms`);
    } finally {
      await Promise.all(children.map((c) => c.kill()));
      await shards.dropShards().catch(() => {});
      await s.cleanup();
    }
  });

  test('a frozen relay (SIGSTOP): the other reads its shard once the server drops the frozen reader; resumed, it gets a fair share back; 0 lost, per-key order', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    const shards = postgresWalShards(s.store, { url: s.url });
    const topic = uniqueTopic('zl-wal-shards-stop');
    await createTopic(topic, 4);
    const children: Child[] = [];
    const start = () => {
      const c = new Child([CHILD], { ZL_PG_URL: s.url, ZL_SCHEMA: s.schema, ZL_KAFKA_BROKERS: KAFKA_BROKERS.join(',') }).start();
      children.push(c);
      return c;
    };
    const readers = async () => new Set((await shards.list()).filter((x) => x.active).map((x) => x.holder));
    try {
      await shards.createShards(2, 'test');
      const a = start();
      await waitFor(() => state(a).holding === '0,1', { what: `relay a reading both shards (${a.output.slice(-400)})`, timeoutMs: 30_000 });
      const b = start();
      await waitFor(async () => (await readers()).size === 2, { what: 'one shard each', timeoutMs: 30_000 });
      const outbox = testOutbox({ schema: s.schema });
      const rolledBack = new Set<string>();
      const burst = async (seed: number, messages: number) => {
        const r = await enqueueWorkload({ pool: s.pool, outbox, topic, messages, keys: 100, workers: 8, rollbackRate: 0.05, seed });
        for (const id of r.rolledBack) rolledBack.add(id);
      };
      const writing = burst(21, 600);
      const before = (await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox`)).rows[0].n;
      await waitFor(async () => (await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox`)).rows[0].n > before + 100, {
        what: 'the burst under way',
        timeoutMs: 20_000,
        intervalMs: 5,
      });
      a.child?.kill('SIGSTOP');
      const frozenAt = Date.now();
      // The frozen relay keeps its slot until wal_sender_timeout (10 s here) and its membership for 10 s.
      await waitFor(
        async () => {
          const list = await shards.list();
          return list.every((x) => x.active && x.holder === state(b).id);
        },
        { what: `b reading both shards (${b.output.slice(-400)})`, timeoutMs: 40_000, intervalMs: 50 },
      );
      const takeover = Date.now() - frozenAt;
      await writing;
      await burst(22, 200);
      a.child?.kill('SIGCONT');
      const resumedAt = Date.now();
      await waitFor(async () => (await readers()).size === 2, {
        what: `one shard each again (a: ${a.output.slice(-300)})`,
        timeoutMs: 40_000,
      });
      const rebalance = Date.now() - resumedAt;
      await burst(23, 200);
      const ids = await outboxIds(s.pool, s.schema);
      const records = await readTopic(topic, {
        done: (r) => new Set(r.map((x) => x.headers['zl-id'])).size >= ids.size,
        timeoutMs: 30_000,
      });
      const check = checkTopic(ids, rolledBack, records);
      console.log(
        `committed ${check.committed}, on topic ${check.onTopic}, duplicates ${check.duplicates}, takeover after SIGSTOP ${takeover} ms, fair share back after SIGCONT ${rebalance} ms`,
      );
      assert.deepEqual(
        { lost: check.lost.length, phantom: check.phantom.length, orderViolations: check.orderViolations },
        { lost: 0, phantom: 0, orderViolations: 0 },
      );
    } finally {
      for (const c of children) c.child?.kill('SIGCONT');
      await Promise.all(children.map((c) => c.kill()));
      await shards.dropShards().catch(() => {});
      await s.cleanup();
    }
  });

  test('relay --mode wal --create-slot --shards: rows before the slots go by the polling path; the count is fixed; doctor names each reader; --drop-slot drops all', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    const topic = uniqueTopic('zl-wal-shards-cli');
    await createTopic(topic, 2);
    const outbox = testOutbox({ schema: s.schema });
    const relayArgs = ['relay', '--mode', 'wal', '--pg', s.url, '--schema', s.schema, '--kafka', KAFKA_BROKERS.join(',')];
    const shardSlots = async () =>
      (
        await s.pool.query<{ slot_name: string; active: boolean }>(
          'select slot_name, active from pg_replication_slots where slot_name like $1 order by slot_name',
          [`zeroloss_${s.schema}_s%`],
        )
      ).rows;
    let relay: Child | undefined;
    try {
      // Committed before the shards exist: not in any slot's stream, so handed to the polling path.
      for (let i = 0; i < 10; i++)
        await s.store.transaction((tx) => outbox.enqueue(tx, { topic, key: `k${i % 4}`, type: 't', payload: { i } }));
      relay = new Child([MAIN, ...relayArgs, '--create-slot', '--shards', '2']).start();
      await waitFor(async () => (await shardSlots()).filter((x) => x.active).length === 2, {
        what: `both shard slots read (${relay.output.slice(-400)})`,
        timeoutMs: 30_000,
      });
      assert.match(relay.output, /10 unsent row\(s\) handed to the polling path/);
      for (let i = 10; i < 30; i++)
        await s.store.transaction((tx) => outbox.enqueue(tx, { topic, key: `k${i % 4}`, type: 't', payload: { i } }));
      const records = await readTopic(topic, { done: (r) => new Set(r.map((x) => x.headers['zl-id'])).size >= 30, timeoutMs: 20_000 });
      const check = checkTopic(await outboxIds(s.pool, s.schema), new Set(), records);
      assert.deepEqual({ lost: check.lost.length, order: check.orderViolations }, { lost: 0, order: 0 });

      const other = await cli(...relayArgs, '--shards', '3');
      assert.equal(other.code, 2, other.stderr);
      assert.match(other.stderr, /has 2 shard\(s\), not 3/);
      const change = await cli(...relayArgs, '--create-slot', '--shards', '3');
      assert.equal(change.code, 2, change.stderr);
      assert.match(change.stderr, /needs a drained outbox and no relay running/);

      const doctor = await cli('doctor', '--pg', s.url);
      const instanceId = /relay (\S+): running/.exec(relay.output)?.[1];
      assert.ok(instanceId, relay.output.slice(-400));
      for (const n of [0, 1]) assert.match(doctor.stdout, new RegExp(`slot zeroloss_${s.schema}_s${n} \\(\\w+\\): read by ${instanceId}`));
      const status = JSON.parse((await cli('status', '--pg', s.url, '--schema', s.schema, '--json')).stdout) as {
        walSlots: Array<{ slot: string; active: boolean; holder?: string | null }>;
      };
      assert.deepEqual(
        status.walSlots.filter((x) => x.slot.startsWith(`zeroloss_${s.schema}_s`)).map((x) => [x.slot, x.active, x.holder]),
        [0, 1].map((n) => [`zeroloss_${s.schema}_s${n}`, true, instanceId]),
      );

      // Stopped and drained: another count is allowed, the old slots dropped.
      await relay.kill('SIGTERM');
      await waitFor(async () => (await shardSlots()).every((x) => !x.active), { what: 'the slots released' });
      relay = new Child([MAIN, ...relayArgs, '--create-slot', '--shards', '3']).start();
      await waitFor(async () => (await shardSlots()).filter((x) => x.active).length === 3, {
        what: `three shard slots read (${relay.output.slice(-400)})`,
        timeoutMs: 30_000,
      });
      await relay.kill('SIGTERM');
      await waitFor(async () => (await shardSlots()).every((x) => !x.active), { what: 'the slots released' });
      const dropped = await cli('relay', '--mode', 'wal', '--drop-slot', '--pg', s.url, '--schema', s.schema);
      assert.equal(dropped.code, 0, dropped.stderr);
      assert.deepEqual(await shardSlots(), []);
      assert.equal((await s.pool.query(`select count(*)::int as n from "${s.schema}".wal_shard`)).rows[0].n, 0);
      assert.equal(
        (await s.pool.query('select count(*)::int as n from pg_publication where pubname like $1', [`zeroloss_${s.schema}_outbox_s%`]))
          .rows[0].n,
        0,
      );
    } finally {
      await relay?.kill();
      await s.cleanup();
    }
  });
});
