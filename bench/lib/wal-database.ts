import type pg from 'pg';
import { startPostgresInstance } from '../../infra/services/postgres-instance.ts';
import { freePort } from '../../infra/services/port-open.ts';
import { postgres } from '../../src/adapters/postgres/postgres.ts';
import { type PostgresWal, postgresWal } from '../../src/adapters/postgres/wal/postgres-wal.ts';
import { type BenchEnv, type BenchSchema, benchSchema } from './env.ts';
import { until } from './measure.ts';

/**
 * What the WAL relay benchmarks run on: a throwaway PostgreSQL with wal_level=logical (the shared server
 * keeps its settings), a bench schema in it, and the store and WAL backend over that schema. `close` drops
 * the slot, its publication, the schema and the server.
 */
export interface WalBenchDatabase {
  /** The throwaway server's connection string (a replication connection needs one). */
  url: string;
  /** Its data directory (pg_waldump reads its pg_wal). */
  dataDir: string;
  s: BenchSchema;
  store: ReturnType<typeof postgres>;
  wal: PostgresWal;
  close(): Promise<void>;
}

export async function walBenchDatabase(env: BenchEnv, name: string, prefix: string, poolSize?: number): Promise<WalBenchDatabase> {
  const instance = await startPostgresInstance({
    port: await freePort(),
    name,
    settings: { wal_level: 'logical', max_wal_senders: 10, max_replication_slots: 10 },
  });
  let s: BenchSchema;
  try {
    s = await benchSchema({ ...env, pgUrl: instance.url }, prefix, poolSize);
  } catch (error) {
    await instance.stop('fast').catch(() => {});
    throw error;
  }
  const store = postgres(instance.url, { schema: s.schema });
  const wal = postgresWal(store, { url: instance.url });
  return {
    url: instance.url,
    dataDir: instance.dataDir,
    s,
    store,
    wal,
    async close() {
      await wal.dropSlot().catch(() => {});
      // The server's data directory outlives the run (the next one reuses it): so would the publication.
      await s.pool.query(`drop publication if exists "${wal.publication}"`).catch(() => {});
      await store.close().catch(() => {});
      await s.drop();
      await instance.stop('fast').catch(() => {});
    },
  };
}

/**
 * Before a WAL relay repetition: the rows of earlier repetitions marked sent, a fresh slot, then `fill`
 * commits the backlog behind it. A fresh slot per repetition, created before the fill: a new session starts
 * decoding at the slot's restart position, which only moves on with the server's running-transactions
 * records (every 15 s, at checkpoints), so a reused slot would make each repetition decode again the WAL of
 * the ones before it (measured: the first commit arrived 17 ms, 0.6 s, 1.5 s, 1.8 s after the start in four
 * repetitions). A long-running relay moves its restart position on; a restarted one pays this once
 * (docs/wal-relay.md).
 */
export async function walBacklog(db: WalBenchDatabase, fill: () => Promise<void>, options: { insertOnly?: boolean } = {}): Promise<void> {
  // Every earlier row marked sent on the row, so no slot's hand-over finds one to move (rows an
  // insert-only repetition left listed in batches included: their scan would cost the next hand-over).
  await db.s.pool.query(
    `update "${db.s.schema}".outbox set state = 1, sent_at = coalesce(sent_at, now()) where state <> 1 or sent_at is null`,
  );
  await freshSlot(db, options);
  await fill();
}

/**
 * Waits for the previous session to let the slot go, then drops it and creates it again; `insertOnly`: in
 * the outbox's insert-only mode (dropping the slot leaves it).
 */
export async function freshSlot(db: WalBenchDatabase, options: { insertOnly?: boolean } = {}): Promise<void> {
  await slotReleased(db.s.pool, db.wal.slot);
  await db.wal.dropSlot();
  await db.wal.createSlot('bench', { insertOnly: options.insertOnly });
}

/** Until no session streams from the slot: a stopped relay's (or reader's) walsender may take a moment to go. */
export async function slotReleased(pool: pg.Pool, slot: string): Promise<void> {
  await until(async () => {
    const { rows } = await pool.query<{ active: boolean }>('select active from pg_replication_slots where slot_name = $1', [slot]);
    return !(rows[0]?.active ?? false);
  }, `the previous session to release slot ${slot}`);
}
