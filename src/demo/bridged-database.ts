import { classifyPostgresError } from '../adapters/postgres/postgres-errors.ts';
import type { MessagePort } from 'node:worker_threads';
import type { Database, SqlExecutor } from '../ports/sql-executor.ts';

/**
 * The wire between a worker thread and the main thread's PGlite (see pglite-host.ts). A worker thread
 * has its own heap, so the one PGlite of the embedded demo is reached through these messages, the way a
 * process reaches a database server through a socket: when the worker is killed, the host rolls back
 * whatever transaction it had open, exactly as a server does for a connection that drops.
 */
export type BridgeRequest =
  /** `tx` runs it in that transaction; `begin` (on its first statement) opens it first. */
  | { id: number; op: 'query'; sql: string; params?: unknown[]; tx?: number; begin?: boolean }
  | { id: number; op: 'end'; tx: number; commit: boolean }
  | { id: number; op: 'listen'; channel: string }
  | { id: number; op: 'unlisten'; listener: number };

export interface BridgeReply {
  rows?: unknown[];
  rowCount?: number;
  listener?: number;
}

export type BridgeResponse =
  | ({ id: number; ok: true } & BridgeReply)
  | { id: number; ok: false; error: { message: string; code?: string } }
  | { notify: number; payload: string };

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

/** A Database (the zeroloss port) whose statements run on the main thread's PGlite. */
export function bridgedDatabase(port: MessagePort): Database {
  let nextId = 1;
  const pending = new Map<number, { resolve: (r: BridgeReply) => void; reject: (e: Error) => void }>();
  const listeners = new Map<number, (payload: string) => void>();

  port.on('message', (message: BridgeResponse) => {
    if ('notify' in message) {
      listeners.get(message.notify)?.(message.payload);
      return;
    }
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    if (message.ok) waiter.resolve(message);
    // Classified as the host's own Database would (SQLSTATE 25P02 → ZL_TRANSACTION_ROLLED_BACK, …): the
    // consumer reads codes, never SQLSTATEs.
    else {
      const raw = Object.assign(new Error(message.error.message), message.error.code ? { code: message.error.code } : {});
      waiter.reject(classifyPostgresError(raw) as Error);
    }
  });

  const request = (body: WithoutId<BridgeRequest>): Promise<BridgeReply> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      port.postMessage({ ...body, id });
    });

  const run = async <R>(sql: string, params: unknown[] | undefined, tx?: number, begin?: boolean) => {
    const response = await request({ op: 'query', sql, params, tx, begin });
    return { rows: ((response.rows ?? []) as R[]).map(toBuffers), rowCount: response.rowCount };
  };
  let nextTx = 1;

  return {
    query: (sql, params) => run(sql, params),
    /**
     * The transaction opens with its first statement: PGlite has one connection, held from BEGIN to
     * COMMIT, so a round trip spent on a bare BEGIN would be a round trip everybody else waits through.
     */
    async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
      const tx = nextTx++;
      let begun = false;
      const executor: SqlExecutor = {
        query: (sql, params) => {
          const begin = !begun;
          begun = true;
          return run(sql, params, tx, begin);
        },
      };
      let value: T;
      try {
        value = await fn(executor);
      } catch (error) {
        if (begun) await request({ op: 'end', tx, commit: false }).catch(() => {});
        throw error;
      }
      if (begun) await request({ op: 'end', tx, commit: true });
      return value;
    },
    async listen(channel, onNotify) {
      const { listener } = await request({ op: 'listen', channel });
      listeners.set(listener as number, onNotify);
      return async () => {
        listeners.delete(listener as number);
        await request({ op: 'unlisten', listener: listener as number });
      };
    },
    async close() {
      port.close();
    },
  };
}

/**
 * Structured cloning turns a Buffer into a plain Uint8Array. zeroloss reads bytea columns as Buffers
 * (pg) or Uint8Arrays (PGlite) alike, but give callers Buffers back so nothing depends on which.
 */
function toBuffers<R>(row: R): R {
  if (row === null || typeof row !== 'object') return row;
  for (const [key, value] of Object.entries(row)) {
    if (value instanceof Uint8Array && !Buffer.isBuffer(value)) {
      (row as Record<string, unknown>)[key] = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    }
  }
  return row;
}
