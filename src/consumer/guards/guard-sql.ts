import { quoteIdent } from '../../core/identifier.ts';

/**
 * Every statement the guards run, in one place. They run on the handler's effect transaction (`ctx.tx`), so
 * they commit or roll back with the message's inbox row. Identifiers are validated and quoted here (the
 * callers pass names, never SQL); values are always parameters. Postgres and PGlite dialect.
 */

/** A business table, optionally in a schema. */
export interface TableRef {
  table: string;
  schema?: string | undefined;
}

export function tableName(ref: TableRef): string {
  const table = quoteIdent(ref.table, 'table');
  return ref.schema === undefined ? table : `${quoteIdent(ref.schema, 'schema')}.${table}`;
}

export function columnNames(names: readonly string[], what = 'column'): string[] {
  return names.map((n) => quoteIdent(n, what));
}

function keyMatch(keys: readonly string[], first: number, alias = ''): string {
  return keys.map((k, i) => `${alias}${k} = $${first + i}`).join(' and ');
}

/**
 * Compare-and-set on a version column: the row changes only while its version still holds the expected
 * value (last parameter), and the version moves to the next one in the same statement, so two writers that
 * read the same version cannot both win. Parameters: the `set` values, the next version, the key values,
 * the expected version. Returns the new version; no row returned means the guard refused.
 */
export function versionedUpdateSql(table: string, keys: readonly string[], version: string, set: readonly string[]): string {
  const assignments = [...set.map((c, i) => `${c} = $${i + 1}`), `${version} = $${set.length + 1}`];
  const firstKey = set.length + 2;
  return `update ${table} set ${assignments.join(', ')}
    where ${keyMatch(keys, firstKey)} and ${version} = $${firstKey + keys.length}
    returning ${version} as version`;
}

/** The row's version now, read after a refused update to say which way it is off. Parameters: the key values. */
export function versionReadSql(table: string, keys: readonly string[], version: string): string {
  return `select ${version} as version from ${table} where ${keyMatch(keys, 1)}`;
}

/**
 * The wide-table write: one row per business key, one column per state. The arriving state fills its own
 * column (and the columns it owns in `values`) only where they are still empty, so a redelivery or a late
 * duplicate changes nothing and the order in which states arrive does not matter: every arrival order ends
 * in the same row. The current state is derived, not written by the message: the furthest state (by the
 * declared order) whose column is filled, recomputed from the merged row on every write.
 *
 * Parameters: the key values, the arriving state's column value, the `values`, then the state names in
 * declared order. Needs a unique index on the key columns (the conflict target).
 */
export function stateUpsertSql(
  table: string,
  keys: readonly string[],
  stateColumns: readonly string[],
  column: string,
  values: readonly string[],
  currentColumn: string | undefined,
): string {
  const written = [column, ...values];
  const firstState = keys.length + written.length + 1;
  // Furthest first: the first filled column, counting from the last state, names the current state.
  const current = (value: (c: string) => string) =>
    `case ${stateColumns
      .map((c, i) => ({ c, i }))
      .reverse()
      .map(({ c, i }) => `when ${value(c)} is not null then $${firstState + i}::text`)
      .join(' ')} end`;
  const insertColumns = [...keys, ...written];
  const insertValues = insertColumns.map((_, i) => `$${i + 1}`);
  if (currentColumn !== undefined) {
    insertColumns.push(currentColumn);
    // A new row holds only the arriving state (its value is never null), so that state is the current one.
    insertValues.push(`$${firstState + stateColumns.indexOf(column)}::text`);
  }
  const updates = written.map((c) => `${c} = coalesce(cur.${c}, excluded.${c})`);
  if (currentColumn !== undefined) updates.push(`${currentColumn} = ${current((c) => `coalesce(cur.${c}, excluded.${c})`)}`);
  return `insert into ${table} as cur (${insertColumns.join(', ')}) values (${insertValues.join(', ')})
    on conflict (${keys.join(', ')}) do update set ${updates.join(', ')}
    returning ${current((c) => `cur.${c}`)} as state`;
}

/**
 * Tries the transaction-scoped advisory lock of a business key once, without waiting: the caller polls with
 * its own bound, so a busy lock never blocks past it and never aborts the transaction (a `lock_timeout`
 * error would). The key is hashed to 64 bits; a collision only makes two operations wait for each other.
 * Released by the transaction's commit or rollback. Parameter: the key.
 */
export const TRY_BUSINESS_LOCK_SQL = 'select pg_try_advisory_xact_lock(hashtextextended($1, 0)) as locked';
