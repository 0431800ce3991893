import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PostgresInboxStore } from '../../../src/adapters/postgres/postgres-inbox-store.ts';
import type { StartRef } from '../../../src/ports/inbox-store.ts';
import { freshSchema } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/** The Postgres start log (poison marks, C7): what the poison guard relies on when it takes marks back. */
describe('postgres start log', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let starts: PostgresInboxStore;

  before(async () => {
    env = await freshSchema('zlsl');
    starts = new PostgresInboxStore(env.db, { schema: env.schema });
  });

  after(async () => {
    await env?.cleanup();
  });

  const ref = (offset: bigint): StartRef => ({ groupId: 'g', topic: 't', partition: 0, offset, messageId: `m${offset}` });
  const mark = async (offset: bigint): Promise<number> => {
    const { rows } = await env.pool.query(
      `select started from "${env.schema}".consumer_attempt where consumer_group = 'g' and topic = 't' and msg_offset = $1`,
      [offset.toString()],
    );
    return rows[0]?.started ?? 0;
  };

  test('releases asked in one turn are taken back together: none returns while another is not yet done', async () => {
    // The effect batcher asks in one turn for the marks of a failed shared transaction's members and tells
    // none of them before all are back (effect-batcher.ts); the store's part is to write them in one
    // statement, so no release returns while another of the same turn is still to be written.
    assert.ok(await starts.firstStart(ref(1n)));
    assert.ok(await starts.firstStart(ref(2n)));
    const locker = await env.pool.connect();
    try {
      await locker.query('begin');
      await locker.query(`select 1 from "${env.schema}".consumer_attempt where msg_offset = 2 for update`);
      let firstDone = false;
      const released = [starts.release(ref(1n)).then(() => (firstDone = true)), starts.release(ref(2n))];
      await waitFor(
        async () => {
          const { rows } = await env.pool.query(
            `select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like $1`,
            [`%${env.schema}%consumer_attempt%`],
          );
          return rows[0].n > 0;
        },
        { what: 'the release of the locked mark waiting for its lock' },
      );
      assert.equal(await mark(1n), 1, 'the first mark is taken back with the second, not before it');
      assert.equal(firstDone, false);
      await locker.query('commit');
      await released[0];
      assert.equal(await mark(2n), 0, 'once the first release returned, the second mark is gone too');
      await Promise.all(released);
      assert.equal(await mark(1n), 0);
    } finally {
      await locker.query('rollback').catch(() => {});
      locker.release();
    }
  });

  test('a record released twice in one turn is taken back twice, never below zero', async () => {
    assert.ok(await starts.firstStart(ref(3n)));
    assert.deepEqual(await starts.countStart(ref(3n)), { started: 2, failed: 0 });
    await Promise.all([starts.release(ref(3n)), starts.release(ref(3n))]);
    assert.equal(await mark(3n), 0);
    await Promise.all([starts.release(ref(3n)), starts.release(ref(4n))]);
    assert.equal(await mark(3n), 0, 'not below zero');
    assert.ok(await starts.firstStart(ref(3n)), 'a mark taken back to zero is a first start again');
  });
});
