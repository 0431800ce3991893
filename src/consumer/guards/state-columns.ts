import { ZerolossError } from '../../core/errors.ts';
import type { SqlExecutor } from '../../ports/sql-executor.ts';
import { columnNames, stateUpsertSql, type TableRef, tableName } from './guard-sql.ts';
import { keyValuesOf } from './version-guard.ts';

export interface StateColumnsOptions extends TableRef {
  /** The key column(s) of the business row; they need a unique index (the upsert's conflict target). */
  key: string | readonly string[];
  /** Every state, in the order the business goes through them: `['created', 'paid', 'shipped']`. */
  states: readonly string[];
  /** The column a state is written to; default `<state>_at`. */
  column?: (state: string) => string;
  /** A text column to keep the derived current state in; none by default (`record` returns it either way). */
  currentColumn?: string;
}

export interface StateArrival {
  /** The key value, or one value per key column, in declared order. */
  key: unknown;
  state: string;
  /** What the state's column holds, e.g. the message's `createdAt`; not null. Take it from the message, not the clock. */
  at: unknown;
  /** Further columns this state owns (written by no other state), e.g. `{ paid_amount: 12 }`. */
  values?: Record<string, unknown>;
}

export interface StateColumns {
  /**
   * Records one state-change message in the caller's transaction (`ctx.tx`): its column (and `values`) are
   * filled if still empty, the row is created if missing. Resolves to the current state after the write:
   * the furthest state whose column is filled.
   */
  record(tx: SqlExecutor, arrival: StateArrival): Promise<{ state: string }>;
}

/**
 * The wide-table pattern for state-change messages: one row per business key, one column per state. Each
 * message only fills its own state's column, so "paid" arriving before "created" is not an error and not
 * lost: the row converges to the same content whatever the arrival order, and the current state is
 * derived from which columns are filled. The names are validated once, here.
 */
export function stateColumns(options: StateColumnsOptions): StateColumns {
  const table = tableName(options);
  const keys = columnNames(typeof options.key === 'string' ? [options.key] : options.key, 'key column');
  if (keys.length === 0) throw new ZerolossError('ZL_INVALID_CONFIG', 'stateColumns needs at least one key column');
  const states = [...options.states];
  if (states.length === 0 || new Set(states).size !== states.length) {
    throw new ZerolossError('ZL_INVALID_CONFIG', 'stateColumns needs a list of distinct states');
  }
  const columnOf = options.column ?? ((s: string) => `${s}_at`);
  const stateCols = columnNames(states.map(columnOf), 'state column');
  if (new Set(stateCols).size !== stateCols.length) throw new ZerolossError('ZL_INVALID_CONFIG', 'two states map to one column');
  const current =
    options.currentColumn === undefined ? undefined : (columnNames([options.currentColumn], 'current state column')[0] as string);
  const cache = new Map<string, string>();
  return {
    async record(tx, arrival) {
      const index = states.indexOf(arrival.state);
      if (index < 0) {
        throw new ZerolossError(
          'ZL_INVALID_PAYLOAD',
          `state ${JSON.stringify(arrival.state)} of ${options.table} is not one of ${states.join(', ')}`,
        );
      }
      if (arrival.at === null || arrival.at === undefined) {
        throw new ZerolossError('ZL_INVALID_PAYLOAD', `state ${arrival.state} of ${options.table} needs a non-null value for its column`);
      }
      const names = Object.keys(arrival.values ?? {}).sort();
      const values = columnNames(names);
      const claimed = values.find((c) => stateCols.includes(c) || keys.includes(c) || c === current);
      if (claimed) throw new ZerolossError('ZL_INVALID_CONFIG', `values of state ${arrival.state} must not write ${claimed}`);
      const shape = `${index}|${values.join(',')}`;
      let sql = cache.get(shape);
      if (sql === undefined) {
        sql = stateUpsertSql(table, keys, stateCols, stateCols[index] as string, values, current);
        cache.set(shape, sql);
      }
      const params = [...keyValuesOf(arrival.key, keys.length), arrival.at, ...names.map((n) => arrival.values?.[n]), ...states];
      const { rows } = await tx.query<{ state: string }>(sql, params);
      return { state: (rows[0] as { state: string }).state };
    },
  };
}
