import type { Migration } from '../migrations.ts';

/**
 * One row per message key (by a 64-bit hash of the key), locked by every enqueue of that key until its
 * transaction ends, whichever producer writes it. The relay sends a key in `seq_id` order and the enqueue
 * draws `seq_id` under this lock, so a key's messages reach the broker in commit order across producers;
 * the per-(producer, key) sequence row alone ordered only one producer's messages.
 *
 * A row lock rather than an advisory lock: row locks live in the row, so a transaction may enqueue any
 * number of keys, where advisory locks would fill the shared lock table (max_locks_per_transaction).
 * Producers of an earlier release do not take it and keep working; only their ordering against other
 * producers is as before.
 */
export const keyLockMigration: Migration = {
  version: 6,
  name: 'key-lock',
  sql: (s) => `
    create table if not exists ${s}.outbox_key_lock (
      key_hash bigint primary key
    );
  `,
};
