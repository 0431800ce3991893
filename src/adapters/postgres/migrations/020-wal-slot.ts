import type { Migration } from '../migrations.ts';

/**
 * `wal_slot`: one row per WAL relay slot whose hand-over committed. Creating a slot is not transactional:
 * `--create-slot` creates it, then hands the rows committed before it (not in its stream) to the polling
 * path, in one transaction. A run killed in between (Ctrl-C, a lost connection, SIGKILL on a long
 * hand-over) rolled the hand-over back and left the slot: relays streamed it, a second `--create-slot`
 * found it and did nothing, and the older rows stayed unsent for good. The row is written in the
 * hand-over's transaction, so a slot without one is known to be such a leftover: relays do not read it and
 * `--create-slot` makes it anew.
 *
 * Slots made before this migration had their hand-over run by the code of their day, which left no
 * record: every logical slot of the database is recorded here once (a name the relay does not use is
 * never looked up).
 */
export const walSlotMigration: Migration = {
  version: 20,
  name: 'wal-slot',
  sql: (s) => `
    create table if not exists ${s}.wal_slot (
      slot_name      text primary key,
      handed_over    integer not null,
      handed_over_at timestamptz not null default now()
    );
    insert into ${s}.wal_slot (slot_name, handed_over)
      select slot_name, 0 from pg_replication_slots where slot_type = 'logical' and database = current_database()
      on conflict (slot_name) do nothing;
  `,
};
