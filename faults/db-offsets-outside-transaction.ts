/**
 * TEST-ONLY deliberately broken inbox store, for `npm run faults -- consumer-kill --offsets database
 * --broken db-offsets-outside-transaction`: it proves the checker fails when a consumer that keeps its
 * offsets in the database (P10, `offsetStore: 'database'`) writes them outside the effect transaction. The
 * shipped PostgresInboxStore, except that `storeOffset` ignores the transaction it is given and commits the
 * next offset at once on a connection of its own. A consumer killed (or a shared effect transaction rolled
 * back) after that write and before the effect's commit leaves the stored position past an effect that
 * never committed, and the next owner of the partition starts after it: the message is lost. The fault
 * lives here, never in src/.
 */
import { PostgresInboxStore } from '../src/adapters/postgres/postgres-inbox-store.ts';
import type { Database, SqlExecutor } from '../src/ports/sql-executor.ts';

export class OffsetsOutsideTransactionInbox extends PostgresInboxStore {
  readonly #db: Database;

  constructor(db: Database, options: { schema: string }) {
    super(db, options);
    this.#db = db;
  }

  override storeOffset(_executor: SqlExecutor, groupId: string, topic: string, partition: number, nextOffset: bigint): Promise<void> {
    return super.storeOffset(this.#db, groupId, topic, partition, nextOffset);
  }
}
