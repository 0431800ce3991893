import { walDoctor } from '../adapters/postgres/wal/wal-doctor.ts';
import type { ReplicationSlotView } from '../operations/status.ts';
import type { SqlExecutor } from '../ports/sql-executor.ts';

/**
 * The logical replication slots on the outbox's database, for `status` and `serve`'s gauges: the WAL
 * relay's slots live there; other databases' slots are their own business.
 */
export function databaseWalSlots(db: SqlExecutor): () => Promise<ReplicationSlotView[]> {
  return async () => {
    const current = (await db.query<{ db: string }>('select current_database() as db')).rows[0]?.db;
    return (await walDoctor(db)).slots.filter((x) => x.database === current);
  };
}
