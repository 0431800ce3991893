import type { Migration } from '../migrations.ts';

/** Embedded transport: a durable partitioned log in Postgres tables, with consumer-group offsets. */
export const tableLogMigration: Migration = {
  version: 3,
  name: 'table-log',
  sql: () => 'select 1',
};
