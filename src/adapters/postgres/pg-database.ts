import type pg from 'pg';
import { ZerolossError } from '../../core/errors.ts';
import { quoteIdent } from '../../core/identifier.ts';
import type { Database, SqlExecutor } from '../../ports/sql-executor.ts';
import { pg as driver } from './pg-driver.ts';
import { classifyPostgresError } from './postgres-errors.ts';

export interface PgDatabaseOptions {
  /** An existing pool (the application's) or a connection string for a pool of our own. */
  pool?: pg.Pool;
  connectionString?: string;
  max?: number;
  /** Called for background connection errors, which must never crash the process. */
  onError?: (error: Error) => void;
}

/**
 * Database port over node-postgres. Survives a Postgres restart: failed statements throw, later ones
 * reconnect. Every failure of the database itself, in `query`, in opening or committing a transaction and in
 * the statements run through the transaction's `tx`, is rethrown as classifyPostgresError says (the server
 * away: ZL_STORE_UNAVAILABLE; a conflict: ZL_STORE_CONFLICT), so no caller reads SQLSTATEs. An error of
 * `fn`'s own is rethrown as it is.
 */
export function pgDatabase(options: PgDatabaseOptions): Database {
  const ownPool = options.pool === undefined;
  const onError = options.onError ?? (() => {});
  const pool =
    options.pool ??
    new driver.Pool({ connectionString: options.connectionString, max: options.max ?? 10, connectionTimeoutMillis: 10_000 });
  // An idle client dying (server restart) emits 'error' on the pool; unhandled, it would kill the process.
  pool.on('error', onError);

  const listeners = new Set<{ close: () => Promise<void> }>();

  return {
    async query<R>(sql: string, params?: unknown[]) {
      try {
        const result = await pool.query(sql, params as unknown[]);
        return { rows: result.rows as R[] };
      } catch (error) {
        throw classifyPostgresError(error);
      }
    },
    async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
      const client = await pool.connect().catch((error: unknown) => {
        throw classifyPostgresError(error);
      });
      // A checked-out client whose server dies emits 'error' on itself, not on the pool; without a
      // listener that is an uncaught exception. The failing query rejects anyway, which is what we act on.
      const onClientError = (error: Error) => onError(error);
      client.on('error', onClientError);
      let broken: unknown;
      const tx = classifyingClient(client);
      try {
        await tx.query('begin');
        const value = await fn(tx);
        // A statement that failed inside fn but whose error fn swallowed leaves the transaction aborted;
        // Postgres then answers COMMIT with ROLLBACK and no error. Treating that as committed would
        // report an effect (and its inbox row) that never happened.
        const done = await tx.query('commit');
        if (done.command === 'ROLLBACK') {
          throw new ZerolossError(
            'ZL_TRANSACTION_ROLLED_BACK',
            'the transaction was rolled back instead of committed: a statement in it failed and its error was caught',
            { retryable: true },
          );
        }
        return value;
      } catch (error) {
        await client.query('rollback').catch((rollbackError: unknown) => {
          broken = rollbackError;
        });
        throw error;
      } finally {
        client.off('error', onClientError);
        // A client whose rollback failed is in an unknown state: destroy it rather than reuse it.
        client.release(broken === undefined ? undefined : (broken as Error));
      }
    },
    async listen(channel, onNotify) {
      const listener = startListener(pool, channel, onNotify, onError);
      listeners.add(listener);
      await listener.ready;
      return async () => {
        listeners.delete(listener);
        await listener.close();
      };
    },
    async close() {
      await Promise.all([...listeners].map((l) => l.close()));
      listeners.clear();
      if (ownPool) await pool.end();
    },
  };
}

/**
 * Keeps one dedicated connection LISTENing, reconnecting after failures. A notification lost while
 * disconnected is harmless: every consumer of these wake-ups also polls.
 */
function startListener(pool: pg.Pool, channel: string, onNotify: (payload: string) => void, onError: (e: Error) => void) {
  const quoted = quoteIdent(channel, 'channel');
  let closed = false;
  let client: pg.Client | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let resolveReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    resolveReady = resolve;
  });

  const connect = async (delayMs: number): Promise<void> => {
    if (closed) return;
    const next = new driver.Client({ ...(pool.options as pg.ClientConfig) });
    next.on('error', (error) => {
      onError(error);
      reconnect(next, delayMs);
    });
    next.on('end', () => reconnect(next, delayMs));
    next.on('notification', (message) => {
      if (message.channel === channel) onNotify(message.payload ?? '');
    });
    try {
      await next.connect();
      await next.query(`listen ${quoted}`);
      client = next;
      resolveReady();
      // A reconnect may have missed notifications: tell the subscriber to look once.
      onNotify('');
    } catch (error) {
      onError(error as Error);
      next.end().catch(() => {});
      reconnect(next, delayMs);
    }
  };

  const reconnect = (failed: pg.Client, delayMs: number) => {
    if (closed || retryTimer !== undefined || (client !== undefined && client !== failed)) return;
    client = undefined;
    // The first attempt resolves `ready` even when the server is down, so start-up never hangs on it.
    resolveReady();
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void connect(Math.min(delayMs * 2, 5_000));
    }, delayMs);
    retryTimer.unref();
  };

  void connect(100);
  return {
    ready,
    async close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      const current = client;
      client = undefined;
      if (current) await current.end().catch(() => {});
    },
  };
}

/**
 * The transaction's client as handed to `fn`: the same PoolClient (so prepared statements and anything else
 * a node-postgres client offers still work), except that a failed `query` rejects with its classified error.
 * Callback and submittable forms (no promise) are passed through untouched.
 */
function classifyingClient(client: pg.PoolClient): pg.PoolClient {
  const query = (...args: unknown[]): unknown => {
    const result: unknown = Reflect.apply(client.query, client, args);
    // A promise (pg may be configured with another Promise library, so any thenable).
    if (typeof (result as { then?: unknown } | undefined)?.then === 'function') {
      return Promise.resolve(result).catch((error: unknown) => {
        throw classifyPostgresError(error);
      });
    }
    return result;
  };
  return new Proxy(client, {
    get(target, property) {
      if (property === 'query') return query;
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
