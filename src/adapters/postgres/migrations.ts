import { ZerolossError } from '../../core/errors.ts';
import { quoteIdent } from '../../core/identifier.ts';
import type { Database } from '../../ports/sql-executor.ts';
import { outboxMigration } from './migrations/001-outbox.ts';
import { consumerMigration } from './migrations/002-consumer.ts';
import { tableLogMigration } from './migrations/003-table-log.ts';
import { operationsMigration } from './migrations/004-operations.ts';
import { writePathMigration } from './migrations/005-write-path.ts';
import { keyLockMigration } from './migrations/006-key-lock.ts';
import { contentDigestMigration } from './migrations/007-content-digest.ts';
import { outboxAutovacuumMigration } from './migrations/008-outbox-autovacuum.ts';
import { sourceRowDiscardedMigration } from './migrations/009-source-row-discarded.ts';
import { sequenceMarksMigration } from './migrations/010-sequence-marks.ts';
import { deliveryReceiptMigration } from './migrations/011-delivery-receipt.ts';
import { sourceRowMessageMigration } from './migrations/012-source-row-message.ts';
import { reconcileHoldMigration } from './migrations/013-reconcile-hold.ts';
import { degradeAndForwardMigration } from './migrations/014-degrade-and-forward.ts';
import { sourceRowControlMigration } from './migrations/015-source-row-control.ts';
import { sentBatchMigration } from './migrations/016-sent-batch.ts';
import { attemptResumeMigration } from './migrations/017-attempt-resume.ts';
import { walShardsMigration } from './migrations/018-wal-shards.ts';
import { outboxFillfactorMigration } from './migrations/019-outbox-fillfactor.ts';
import { walSlotMigration } from './migrations/020-wal-slot.ts';
import { walBatchMigration } from './migrations/021-wal-batch.ts';

/**
 * Versioned, append-only migrations. Each runs once, in its own transaction, under an advisory lock so
 * several processes starting together do not race. Never edit a released migration: add a new one.
 * `s` is the validated, quoted schema name.
 */
export interface Migration {
  version: number;
  name: string;
  sql: (s: string) => string;
}

/** Append-only: each file owns one version number; never edit one that has been released. */
export const MIGRATIONS: Migration[] = [
  outboxMigration,
  consumerMigration,
  tableLogMigration,
  operationsMigration,
  writePathMigration,
  keyLockMigration,
  contentDigestMigration,
  outboxAutovacuumMigration,
  sourceRowDiscardedMigration,
  sequenceMarksMigration,
  deliveryReceiptMigration,
  sourceRowMessageMigration,
  reconcileHoldMigration,
  degradeAndForwardMigration,
  sourceRowControlMigration,
  sentBatchMigration,
  attemptResumeMigration,
  walShardsMigration,
  outboxFillfactorMigration,
  walSlotMigration,
  walBatchMigration,
];

export interface MigrateResult {
  schema: string;
  applied: number[];
  current: number;
}

export async function migrate(db: Database, schema = 'zeroloss', migrations: Migration[] = MIGRATIONS): Promise<MigrateResult> {
  const s = quoteIdent(schema, 'schema');
  const applied: number[] = [];
  try {
    await db.transaction(async (tx) => {
      // One lock id per schema: hashtext is stable and available on every Postgres and PGlite.
      await tx.query('select pg_advisory_xact_lock(hashtext($1))', [`zeroloss:migrate:${schema}`]);
      await tx.query(`create schema if not exists ${s}`);
      await tx.query(
        `create table if not exists ${s}.migrations (version integer primary key, name text not null, applied_at timestamptz not null default now())`,
      );
      const done = new Set((await tx.query<{ version: number }>(`select version from ${s}.migrations`)).rows.map((r) => Number(r.version)));
      for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
        if (done.has(m.version)) continue;
        // One statement per call: PGlite's extended protocol takes a single statement at a time.
        for (const statement of splitStatements(m.sql(s))) await tx.query(statement);
        await tx.query(`insert into ${s}.migrations (version, name) values ($1, $2)`, [m.version, m.name]);
        applied.push(m.version);
      }
    });
  } catch (cause) {
    if (cause instanceof ZerolossError) throw cause;
    throw new ZerolossError('ZL_MIGRATION_FAILED', `migration of schema ${schema} failed: ${(cause as Error).message}`, { cause });
  }
  const current = Math.max(0, ...migrations.map((m) => m.version));
  return { schema, applied, current };
}

/** Splits migration text on statement-ending semicolons; migrations hold no semicolons inside literals. */
function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*(?:\n|$)/)
    .map((part) => part.replace(/^\s*--.*$/gm, '').trim())
    .filter((part) => part.length > 0);
}
