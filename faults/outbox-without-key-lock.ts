/**
 * TEST-ONLY deliberately broken producer, for `npm run faults -- two-producers --broken producer-without-key-lock`:
 * it proves the checker fails when a key's messages are not numbered in commit order across producers. It
 * writes outbox rows as the shipped insert does, minus the key's lock (outbox_key_lock): seq_id is drawn
 * under the (producer, key) sequence row only, which serializes one producer's transactions on a key but
 * not two producers'. Then a transaction that drew the lower seq_id can commit after one that drew a higher
 * one, the relay may send the higher one first, and the key's order on the topic and in the effects breaks.
 * The fault lives here, never in src/.
 */
import type { OutboxRow, OutboxWriter } from '../src/ports/outbox-store.ts';
import type { SqlExecutor } from '../src/ports/sql-executor.ts';

export class OutboxWithoutKeyLock implements OutboxWriter {
  readonly #sql: string;

  constructor(schema: string) {
    const s = `"${schema}"`;
    this.#sql = `
      with seq as (
        insert into ${s}.outbox_key_seq (producer_id, msg_key, seq) values ($6, $3, 1)
        on conflict (producer_id, msg_key) do update set seq = ${s}.outbox_key_seq.seq + 1
        returning seq, nextval('${s}.outbox_seq_id_seq') as seq_id
      )
      insert into ${s}.outbox (seq_id, message_id, topic, msg_key, msg_type, trace_id, producer_id, key_seq, headers, payload)
      select seq.seq_id, $1, $2, $3, $4, $5, $6, seq.seq, $7::jsonb || jsonb_build_object('zl-seq', seq.seq::text), $8 from seq
      returning key_seq`;
  }

  async insert(tx: SqlExecutor, row: OutboxRow): Promise<{ seq: number }> {
    const { rows } = await tx.query<{ key_seq: string }>(this.#sql, [
      row.messageId,
      row.topic,
      row.key,
      row.type,
      row.traceId,
      row.producerId,
      JSON.stringify(row.headers),
      row.payload,
    ]);
    return { seq: Number(rows[0]?.key_seq) };
  }
}
