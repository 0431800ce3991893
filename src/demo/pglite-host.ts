import type { PGlite, Transaction } from '@electric-sql/pglite';
import type { MessagePort } from 'node:worker_threads';
import type { BridgeReply, BridgeRequest, BridgeResponse } from './bridged-database.ts';

/** Thrown into an open transaction to make PGlite roll it back. */
class Rollback extends Error {}

interface OpenTransaction {
  tx: Transaction;
  end: (commit: boolean) => void;
  /** Resolves once PGlite has committed or rolled back; rejects if the COMMIT failed. */
  settled: Promise<void>;
}

/**
 * One connection's worth of a PGlite, served to a worker thread over a MessagePort. `drop()` is what a
 * database server does when a client process dies: its open transaction is rolled back, its LISTENs go,
 * and nothing it sent afterwards is run.
 */
export class PgliteSession {
  readonly #pglite: PGlite;
  readonly #port: MessagePort;
  /** The client's transactions by its own ids, from their first statement until they end. */
  readonly #transactions = new Map<number, Promise<OpenTransaction>>();
  readonly #listeners = new Map<number, () => Promise<void>>();
  #nextListener = 1;
  #dropped = false;

  constructor(pglite: PGlite, port: MessagePort) {
    this.#pglite = pglite;
    this.#port = port;
    port.on('message', (message: BridgeRequest) => {
      if (this.#dropped) return;
      this.#handle(message).then(
        (response) => this.#reply({ id: message.id, ok: true, ...response }),
        (error: unknown) => this.#reply({ id: message.id, ok: false, error: describe(error) }),
      );
    });
  }

  /** The client is gone: roll back what it had open and forget it. */
  drop(): void {
    if (this.#dropped) return;
    this.#dropped = true;
    for (const opening of this.#transactions.values()) opening.then((open) => open.end(false)).catch(() => {});
    this.#transactions.clear();
    for (const unlisten of this.#listeners.values()) unlisten().catch(() => {});
    this.#listeners.clear();
    this.#port.close();
  }

  async #handle(message: BridgeRequest): Promise<BridgeReply> {
    switch (message.op) {
      case 'query': {
        let target: PGlite | Transaction = this.#pglite;
        if (message.tx !== undefined) {
          // Registered before any await, so the transaction's later statements find it.
          if (message.begin) this.#transactions.set(message.tx, this.#begin());
          const open = await this.#transactions.get(message.tx);
          if (!open) throw new Error(`transaction ${message.tx} is not open`);
          target = open.tx;
        }
        const result = await target.query(message.sql, message.params);
        return { rows: result.rows, rowCount: result.affectedRows };
      }
      case 'end': {
        const opening = this.#transactions.get(message.tx);
        this.#transactions.delete(message.tx);
        const open = await opening?.catch(() => undefined);
        if (!open) return {}; // it never opened: nothing to commit or roll back
        open.end(message.commit);
        await open.settled;
        return {};
      }
      case 'listen': {
        const id = this.#nextListener++;
        const unlisten = await this.#pglite.listen(message.channel, (payload) => this.#reply({ notify: id, payload: payload ?? '' }));
        if (this.#dropped) await unlisten();
        else this.#listeners.set(id, unlisten);
        return { listener: id };
      }
      case 'unlisten': {
        const unlisten = this.#listeners.get(message.listener);
        this.#listeners.delete(message.listener);
        await unlisten?.();
        return {};
      }
    }
  }

  /**
   * Opens a PGlite transaction and holds it until the client ends it (or drops). PGlite has a single
   * connection: while this transaction is open every other statement waits, as it would in-process.
   */
  #begin(): Promise<OpenTransaction> {
    return new Promise<OpenTransaction>((resolveOpen, rejectOpen) => {
      let end: (commit: boolean) => void = () => {};
      const decided = new Promise<void>((resolve, reject) => {
        end = (commit) => (commit ? resolve() : reject(new Rollback()));
      });
      const open: OpenTransaction = { tx: undefined as unknown as Transaction, end, settled: Promise.resolve() };
      open.settled = this.#pglite
        .transaction(async (tx) => {
          if (this.#dropped) throw new Rollback();
          open.tx = tx;
          resolveOpen(open);
          await decided;
        })
        .then(
          () => {},
          (error: unknown) => {
            rejectOpen(error);
            // A rollback the client asked for (or a drop) is the outcome wanted; a failed COMMIT is not.
            if (!(error instanceof Rollback)) throw error;
          },
        );
      open.settled.catch(() => {});
    });
  }

  #reply(response: BridgeResponse): void {
    if (!this.#dropped) this.#port.postMessage(response);
  }
}

function describe(error: unknown): { message: string; code?: string } {
  const e = error as { message?: unknown; code?: unknown };
  return {
    message: typeof e?.message === 'string' ? e.message : String(error),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
  };
}
