import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import pg from 'pg';
import { MIGRATIONS, migrate } from '../../src/adapters/postgres/migrations.ts';
import { pgDatabase } from '../../src/adapters/postgres/pg-database.ts';
import { PostgresOperationsStore } from '../../src/adapters/postgres/postgres-operations-store.ts';
import { PostgresOutboxStore } from '../../src/adapters/postgres/postgres-outbox-store.ts';
import { OpsCollector } from '../../src/operations/ops-collector.ts';
import { createOpsMetrics } from '../../src/operations/ops-metrics.ts';

import { PG_URL, freshSchema, inTransaction, uniqueName } from '../helpers/pg.ts';
import { testOutbox } from '../helpers/test-outbox.ts';

/**
 * Issue 14 item 5: a polling round records its first-attempt sends as one transition row (migration 016),
 * and every reader (trace, the metrics collector, retention) sees one 0 -> 1 transition per message, as it
 * does for rows recorded one by one (an older relay, or rows sent before the migration).
 */
describe('outbox: first-attempt sends recorded per round', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  before(async () => {
    env = await freshSchema('zlsb');
  });
  after(async () => {
    await env.cleanup();
  });

  test('one batch row per round; trace, the collector and retention read it as one transition per message', async () => {
    const s = `"${env.schema}"`;
    const outbox = testOutbox({ schema: env.schema });
    const store = new PostgresOutboxStore(env.db, { schema: env.schema });
    const ops = new PostgresOperationsStore(env.db, { schema: env.schema });
    const metrics = createOpsMetrics(new Registry());
    const collector = new OpsCollector({ store: ops, metrics }, { commitDelayMs: 0, groups: [] });
    const ids = await inTransaction(env.pool, async (tx) => {
      const out: string[] = [];
      for (const key of ['a', 'b', 'c', 'd', 'e', 'f'])
        out.push((await outbox.enqueue(tx, { topic: 't', key, type: 'x', payload: key })).id);
      return out;
    });
    // A row sent by a relay of the release before: its own transition row, no sent_batch.
    const legacy = (await inTransaction(env.pool, (tx) => outbox.enqueue(tx, { topic: 't', key: 'g', type: 'x', payload: 'g' }))).id;
    await collector.collect(); // counting starts here

    await env.pool.query(`update ${s}.outbox set state = 1, sent_at = now() where message_id = $1`, [legacy]);
    await env.pool.query(
      `insert into ${s}.outbox_transition (message_id, from_state, to_state, attempt, actor) values ($1, 0, 1, 1, 'old-relay')`,
      [legacy],
    );
    const claimed = await store.claim('relay-1', 10, 60_000);
    assert.equal(claimed.length, 6);
    const retried = claimed.find((r) => r.messageId === ids[5]);
    assert.ok(retried);
    await store.markFailed('relay-1', [{ ref: retried.ref, error: 'boom', action: 'retry', delayMs: 0, charge: true }]);
    await store.markSent(
      'relay-1',
      claimed.filter((r) => r !== retried).map((r, i) => ({ ref: r.ref, partition: 0, offset: BigInt(i) })),
    );
    const again = await store.claim('relay-2', 10, 60_000);
    assert.deepEqual(
      again.map((r) => [r.messageId, r.attempt]),
      [[ids[5], 2]],
    );
    await store.markSent('relay-2', [{ ref: again[0]?.ref ?? '', partition: 0, offset: 9n }]);

    const batches = await env.pool.query(
      `select actor, from_state, to_state, attempt, seq_ids::text[] as seq_ids from ${s}.outbox_transition where message_id is null`,
    );
    assert.equal(batches.rows.length, 1, 'one row for the round');
    assert.deepEqual(
      { ...batches.rows[0], seq_ids: batches.rows[0].seq_ids.length },
      { actor: 'relay-1', from_state: 0, to_state: 1, attempt: 1, seq_ids: 5 },
    );
    const own = await env.pool.query(`select count(*)::int as n from ${s}.outbox_transition where message_id is not null`);
    assert.equal(own.rows[0].n, 3, 'the legacy send, and the retried row: failed, then sent');
    const unlinked = await env.pool.query(`select count(*)::int as n from ${s}.outbox where state = 1 and sent_batch is null`);
    assert.equal(unlinked.rows[0].n, 2, 'the legacy row and the retried row have no batch');

    const shape = (t: { from: number; to: number; attempt: number; actor: string }) => [t.from, t.to, t.attempt, t.actor];
    assert.deepEqual((await ops.transitions(ids[0] as string)).map(shape), [[0, 1, 1, 'relay-1']]);
    assert.deepEqual((await ops.transitions(ids[5] as string)).map(shape), [
      [0, 2, 1, 'relay-1'],
      [2, 1, 2, 'relay-2'],
    ]);
    assert.deepEqual((await ops.transitions(legacy)).map(shape), [[0, 1, 1, 'old-relay']]);

    const since = await ops.transitionsSince('0', 5_000);
    assert.equal(since.filter((t) => t.from === 0 && t.to === 1 && t.attempt === 1).length, 6, 'five in the batch and the legacy one');
    assert.ok(since.every((t) => t.sinceCommitSeconds !== null));
    assert.deepEqual(
      since.map((t) => BigInt(t.id)),
      since.map((t) => BigInt(t.id)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
      'in id order',
    );
    await collector.collect();
    const text = await metrics.registry.metrics();
    assert.match(text, /zeroloss_outbox_transitions_total\{to="sent",kind="first"\} 6/);
    assert.match(text, /zeroloss_outbox_transitions_total\{to="sent",kind="compensation"\} 1/);
    assert.match(text, /zeroloss_outbox_commit_to_ack_seconds_count\{kind="first"\} 6/);

    // Retention past the age removes the rows and the round's row with them.
    assert.equal(await ops.deleteBatch('outbox', 0, 1_000), 7);
    const left = await env.pool.query(`select count(*)::int as n from ${s}.outbox_transition`);
    assert.equal(left.rows[0].n, 0);
  });

  test('upgrade with rows in flight: rows leased before migration 016 are recorded after it, by a new relay and by an old one', async () => {
    const schema = uniqueName('zlsbup');
    const pool = new pg.Pool({ connectionString: PG_URL, max: 5 });
    pool.on('error', () => {});
    const db = pgDatabase({ pool });
    try {
      await migrate(
        db,
        schema,
        MIGRATIONS.filter((m) => m.version < 16),
      );
      const s = `"${schema}"`;
      const outbox = testOutbox({ schema });
      const ids = await inTransaction(pool, async (tx) => {
        const out: string[] = [];
        for (const key of ['a', 'b', 'c', 'd']) out.push((await outbox.enqueue(tx, { topic: 't', key, type: 'x', payload: key })).id);
        return out;
      });
      const store = new PostgresOutboxStore(db, { schema });
      const leased = await store.claim('relay-new', 10, 60_000);
      assert.equal(leased.length, 4, 'leased by a relay before the upgrade');
      assert.deepEqual(
        (await migrate(db, schema)).applied,
        MIGRATIONS.filter((m) => m.version >= 16).map((m) => m.version),
      );
      // The markSent of the release before migration 016, as an old relay in a rolling deploy still runs it.
      const oldMarkSent = `
        with r as (select * from unnest($1::bigint[], $2::int[], $3::bigint[]) as r(id, part, off)),
        old as (select o.seq_id, o.state from ${s}.outbox o join r on o.seq_id = r.id where o.state <> 1 for update of o),
        upd as (
          update ${s}.outbox o
          set state = 1, sent_at = now(), modified_time = now(), lease_owner = null, lease_until = null,
              sent_partition = r.part, sent_offset = r.off
          from r, old where o.seq_id = r.id and old.seq_id = o.seq_id
          returning o.message_id, old.state as from_state, o.attempts
        )
        insert into ${s}.outbox_transition (message_id, from_state, to_state, attempt, actor)
        select message_id, from_state, 1, attempts, $4 from upd`;
      const [x, y, ...rest] = leased;
      await pool.query(oldMarkSent, [[x?.ref, y?.ref], [0, 0], ['1', '2'], 'relay-old']);
      await store.markSent(
        'relay-new',
        rest.map((r, i) => ({ ref: r.ref, partition: 0, offset: BigInt(10 + i) })),
      );
      const states = await pool.query(`select count(*)::int as n from ${s}.outbox where state = 1`);
      assert.equal(states.rows[0].n, 4);
      const ops = new PostgresOperationsStore(db, { schema });
      for (const [i, id] of ids.entries()) {
        const actor = i < 2 ? 'relay-old' : 'relay-new';
        assert.deepEqual(
          (await ops.transitions(id)).map((t) => [t.from, t.to, t.attempt, t.actor]),
          [[0, 1, 1, actor]],
        );
      }
      assert.equal((await ops.transitionsSince('0', 5_000)).filter((t) => t.to === 1).length, 4);
    } finally {
      await db.close();
      await pool.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
      await pool.end();
    }
  });
});
