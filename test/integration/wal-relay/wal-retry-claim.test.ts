import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { PG_URL } from '../../helpers/pg.ts';
import { StoreHarness } from '../../conformance/store-harness.ts';
import { walSchema } from './wal-postgres.ts';

/**
 * The WAL relay's polling path claims failed rows like the outbox's claim; a key's rows held back behind its
 * failed row are due at once, so a key with a claim's worth of them must not hide every other key's failed rows.
 * Plain SQL on the shared Postgres: no slot, no stream.
 */
const s = await walSchema(PG_URL, { createSlot: false });
after(() => s.cleanup());

test("WAL polling path: keys held back with a claim's worth of rows or more behind them do not hide the other keys' failed rows", async () => {
  const h = new StoreHarness(s.store, s.schema);
  const source = s.wal.ledger.retrySource;
  const rows = [
    h.row('parked'),
    ...Array.from({ length: 6 }, () => h.row('parked')),
    h.row('waiting'),
    ...Array.from({ length: 6 }, () => h.row('waiting')),
    h.row('other'),
  ];
  await h.enqueue(...rows);
  // As the stream records them: the first row of two keys failed (one parked, one in its retry delay), the
  // later rows of those keys held back (failed, due at once), and one other key's row failed and due.
  const ids = (key: string) => rows.filter((r) => r.key === key).map((r) => r.messageId);
  const [parked, ...parkedRest] = ids('parked');
  const [waiting, ...waitingRest] = ids('waiting');
  const q = (sql: string, params: unknown[]) => s.pool.query(sql.replaceAll('$s', `"${s.schema}"`), params);
  await q('update $s.outbox set state = 3 where message_id = $1', [parked]);
  await q("update $s.outbox set state = 2, next_attempt_at = now() + interval '1 hour' where message_id = $1", [waiting]);
  await q('update $s.outbox set state = 2, next_attempt_at = now() where message_id = any($1)', [
    [...parkedRest, ...waitingRest, ...ids('other')],
  ]);
  // Before, the claim took the 5 oldest waiting rows, all held back by their keys' first rows, and returned
  // nothing for as long as the holds lasted.
  const claimed = await source.claim('relay-a', 5, 60_000);
  assert.deepEqual(
    claimed.map((c) => c.messageId),
    ids('other'),
  );
  assert.deepEqual(await source.claim('relay-b', 5, 60_000), [], 'a row was claimed past its key’s holder');
});
