/**
 * The one method zeroloss needs from whatever transaction the application already holds. A `pg` Client or
 * PoolClient and a PGlite transaction fit it as they are; other drivers need a three-line adapter.
 */
export interface SqlExecutor {
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
}

/**
 * zeroloss's own access to the database (relay, consumer, tools): autocommit statements, transactions it
 * opens itself, and commit-time wake-ups.
 */
export interface Database extends SqlExecutor {
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** Subscribes to a notification channel; resolves to an unsubscribe function. */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}
