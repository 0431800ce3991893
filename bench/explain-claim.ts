/**
 * `node bench/explain-claim.ts [sent] [pending] [--analyze]`: EXPLAIN (ANALYZE, BUFFERS, WAL) of the relay's
 * claim and markSent statements on an outbox holding `sent` sent rows and `pending` unsent ones (100
 * keys), in a scratch schema that is dropped afterwards. Each statement runs in a transaction that is
 * rolled back. Without --analyze the table has no statistics yet, as a fresh or busy table may not.
 */
import { outboxSql } from '../src/adapters/postgres/outbox-sql.ts';

import { benchSchema } from './lib/env.ts';
import { fillOutbox } from './relay.ts';
import { testOutbox } from '../test/helpers/test-outbox.ts';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const sent = Number(args[0] ?? 100_000);
const pending = Number(args[1] ?? 5_000);
const env = { pgUrl: process.env.ZL_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test', brokers: [], log: console.error };
const s = await benchSchema(env, 'zlb_explain');
try {
  const outbox = testOutbox({ schema: s.schema, producerId: 'bench' });
  await fillOutbox({ transaction: (fn) => s.db.transaction(fn), outbox, topic: 't', messages: sent + pending, keys: 100 });
  await s.pool.query(`update "${s.schema}".outbox set state = 1, sent_at = now() where seq_id <= $1`, [sent]);
  if (process.argv.includes('--analyze')) await s.pool.query(`vacuum analyze "${s.schema}".outbox`);
  const sql = outboxSql(`"${s.schema}"`, { notifyChannel: undefined, holdKeyOnParked: true });
  const client = await s.pool.connect();
  try {
    await client.query('begin');
    const claim = await client.query(`explain (analyze, buffers, wal) ${sql.claim}`, ['bench', 500, 60_000]);
    console.log(`--- claim of 500\n${claim.rows.map((r) => r['QUERY PLAN']).join('\n')}`);
    await client.query('rollback');
    await client.query('begin');
    const claimed = await client.query(sql.claim, ['bench', 500, 60_000]);
    const ids = claimed.rows.map((r) => r.ref as string);
    const mark = await client.query(`explain (analyze, buffers, wal) ${sql.markSent}`, [
      ids,
      ids.map(() => 0),
      ids.map((_, i) => String(i)),
      'bench',
    ]);
    console.log(`--- markSent of ${ids.length}\n${mark.rows.map((r) => r['QUERY PLAN']).join('\n')}`);
    await client.query('rollback');
  } finally {
    client.release();
  }
} finally {
  await s.drop();
}
