import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { formatLsn, libraryAcknowledgeArgument, parseLsn } from '../../../src/adapters/postgres/wal/lsn.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';
import type { WalCommit } from '../../../src/ports/wal-stream.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { startWalPostgres, walSchema } from './wal-postgres.ts';

/**
 * The slot stream's acknowledgement, on a real slot: confirming a transaction must never skip the next
 * one. pg-logical-replication 2.5.0 adds 1 to the position it is given, so confirming a commit's end LSN as
 * it is skips a transaction whose commit record starts exactly there (the next record when the end is
 * 8-byte aligned): here T2 inserts first and commits right after T1, so its commit record follows T1's.
 * And an idle relay confirms the keepalive's position, so other tables' writes do not pile up behind it.
 */
let instance: PostgresInstance;
before(async () => {
  instance = await startWalPostgres('ack');
});
after(async () => {
  await instance?.stop('fast');
});

test('log positions: parse, format and the argument the library needs to send exactly a position', () => {
  assert.equal(parseLsn('16/B374D848'), (0x16n << 32n) | 0xb374d848n);
  assert.equal(formatLsn(parseLsn('0/1A2B3C')), '0/1A2B3C');
  assert.equal(libraryAcknowledgeArgument('1/0'), '0/FFFFFFFF');
  assert.equal(libraryAcknowledgeArgument('0/3000060'), '0/300005F');
  assert.throws(() => parseLsn('nope'), { code: 'ZL_INVALID_OFFSET' });
});

test('confirming a transaction replays the next one after a restart, whatever its commit record position', async () => {
  const s = await walSchema(instance.url);
  const outbox = testOutbox({ schema: s.schema });
  const message = (key: string) => ({ topic: 'wal-ack', key, type: 't', payload: {} });
  let skipped = 0;
  try {
    for (let trial = 0; trial < 16; trial++) {
      let commits: WalCommit[] = [];
      // The test confirms by hand; an idle relay's confirmations of keepalive positions are off here.
      const handler = { partRows: 100, commit: (c: WalCommit) => commits.push(c), end: () => {}, caughtUp: () => false };
      let session = await s.wal.stream.open(handler);
      const t1 = await s.pool.connect();
      const t2 = await s.pool.connect();
      try {
        await t2.query('begin');
        const second = await outbox.enqueue(t2, message(`b${trial}`));
        await t1.query('begin');
        const first = await outbox.enqueue(t1, message(`a${trial}`));
        await t1.query('commit');
        await t2.query('commit');
        await waitFor(() => commits.length >= 2, { what: 'both transactions streamed', timeoutMs: 10_000 });
        assert.equal(commits[0]?.rows[0]?.messageId, first.id);
        // Confirm T1 only, then read again from the slot's confirmed position: T2 must come first.
        await session.acknowledge(commits[0]?.endLsn as string);
        await session.close();
        await waitFor(
          async () =>
            (await s.pool.query('select active from pg_replication_slots where slot_name = $1', [s.wal.slot])).rows[0]?.active === false,
          {
            what: 'the slot released',
          },
        );
        commits = [];
        session = await s.wal.stream.open(handler);
        const replayed = await waitFor(() => commits[0], { what: 'the replay', timeoutMs: 3_000 }).catch(() => undefined);
        if (replayed?.rows[0]?.messageId !== second.id) skipped++;
        else await session.acknowledge(replayed.endLsn as string);
      } finally {
        t1.release();
        t2.release();
        await session.close();
        await waitFor(
          async () =>
            (await s.pool.query('select active from pg_replication_slots where slot_name = $1', [s.wal.slot])).rows[0]?.active === false,
          {
            what: 'the slot released',
          },
        );
      }
      // After a skip the confirmed position is past T2: start the next trial from there.
    }
    assert.equal(skipped, 0, `transactions skipped on resume in 16 trials: ${skipped}`);
  } finally {
    await s.cleanup();
  }
});

test('an idle relay confirms past the writes of other tables, so the slot holds back no WAL for them', async () => {
  const s = await walSchema(instance.url);
  const relay = createRelay({
    mode: 'wal',
    wal: s.wal,
    transport: { publisher: { publish: async (r) => r.map(() => ({ ok: true })), close: async () => {} } },
  });
  const streaming = new Promise<void>((resolve) => relay.on('slot', (e) => e.state === 'streaming' && resolve()));
  try {
    await relay.start();
    await streaming;
    await s.pool.query(`create table "${s.schema}".other (id int, note text)`);
    await s.pool.query(`insert into "${s.schema}".other select g, repeat('x', 200) from generate_series(1, 5000) g`);
    const written = (await s.pool.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]?.lsn as string;
    await waitFor(
      async () =>
        (
          await s.pool.query('select confirmed_flush_lsn >= $2::pg_lsn as past from pg_replication_slots where slot_name = $1', [
            s.wal.slot,
            written,
          ])
        ).rows[0]?.past === true,
      { what: "the slot confirmed past the other table's writes", timeoutMs: 10_000 },
    );
  } finally {
    await relay.stop();
    await s.cleanup();
  }
});
