import { ZerolossError } from '../../core/errors.ts';
import { pgDatabase } from './pg-database.ts';
import { type PostgresStore, type PostgresStoreOptions, postgresStore } from './postgres-store.ts';

/**
 * The slice of a node-postgres `Pool` zeroloss uses. Declared here so the published types need no
 * `@types/pg`: an application passes its own `new pg.Pool(…)`, whatever typings it has.
 */
export interface PgPool {
  connect(): Promise<unknown>;
  query(text: string, params?: unknown[]): Promise<unknown>;
  on(event: 'error', listener: (error: Error) => void): unknown;
  end(): Promise<void>;
}

export interface PostgresOptions extends PostgresStoreOptions {
  /** Connections of the pool made from a URL (default 10); ignored when you pass your own pool. */
  max?: number;
  /** Background connection errors (an idle client dropped by a server restart); they never crash the process. */
  onError?: (error: Error) => void;
}

/**
 * zeroloss on Postgres: the outbox writer, relay source, inbox, dead letters, operations store and
 * migrations of one schema. Pass your application's pool (enqueue then runs in your transactions, on
 * your connections) or a URL (the bundle makes a pool and `close` ends it).
 */
export function postgres(poolOrUrl: PgPool | string, options: PostgresOptions = {}): PostgresStore {
  const { max, onError, ...storeOptions } = options;
  if (typeof poolOrUrl === 'string') {
    if (poolOrUrl.length === 0)
      throw new ZerolossError('ZL_INVALID_CONFIG', 'postgres needs a connection URL or a pg Pool', { details: { field: 'pool' } });
    return postgresStore(pgDatabase({ connectionString: poolOrUrl, max, onError }), storeOptions);
  }
  if (
    poolOrUrl === null ||
    typeof poolOrUrl !== 'object' ||
    typeof poolOrUrl.connect !== 'function' ||
    typeof poolOrUrl.on !== 'function'
  ) {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      "postgres needs a connection URL or a pg Pool: postgres(new pg.Pool(…)) or postgres('postgres://…')",
      {
        details: { field: 'pool' },
      },
    );
  }
  return postgresStore(pgDatabase({ pool: poolOrUrl as never, onError }), storeOptions);
}
