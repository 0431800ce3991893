import { testOutbox } from '../../helpers/test-outbox.ts';
import type { WalSchema } from './wal-postgres.ts';

/**
 * What the insert-only mode's tests write and read back: `count` messages to topic `orders`, 10 per
 * transaction, over `keys` keys (or all of one key); resolves to their ids in commit order.
 */
export async function enqueueOrders(s: WalSchema, count: number, keys: number | string, from = 0, producerId = 'io'): Promise<string[]> {
  const outbox = testOutbox({ schema: s.schema, producerId });
  const ids: string[] = [];
  for (let t = from; t < from + count; t += 10) {
    await s.store.transaction(async (tx) => {
      for (let i = t; i < Math.min(from + count, t + 10); i++) {
        const key = typeof keys === 'string' ? keys : `k${i % keys}`;
        ids.push((await outbox.enqueue(tx, { topic: 'orders', key, type: 'order.placed', payload: { i } })).id);
      }
    });
  }
  return ids;
}

export interface OutboxRow {
  message_id: string;
  msg_key: string;
  state: number;
  sent_at: Date | null;
  updated: boolean;
  listed: number;
}

/** Each outbox row with how many batch rows list it, and whether anything ever updated it. */
export async function outboxRows(s: WalSchema): Promise<OutboxRow[]> {
  const { rows } = await s.pool.query<OutboxRow>(
    `select o.message_id, o.msg_key, o.state, o.sent_at, o.modified_time <> o.created_at as updated,
       (select count(*)::int from "${s.schema}".outbox_wal_batch b where o.seq_id = any(b.seq_ids)) as listed
     from "${s.schema}".outbox o order by o.seq_id`,
  );
  return rows;
}
