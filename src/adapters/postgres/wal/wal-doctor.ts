import type { SqlExecutor } from '../../../ports/sql-executor.ts';
import { walSql } from './wal-sql.ts';

/** The shape of the other doctor checks' findings (Kafka, Redis), so the CLI lists them alike. */
export interface DoctorFinding {
  severity: 'error' | 'warning';
  /** `postgres` or `slot:<name>`. */
  subject: string;
  setting: string;
  actual: string;
  expected: string;
  message: string;
}

export interface WalSlotReport {
  slot: string;
  plugin: string;
  database: string;
  active: boolean;
  /** WAL the server keeps for this slot (from its restart position to now). */
  retainedBytes: number;
  /** WAL written since the slot's confirmed position: what its reader has not confirmed yet. */
  lagBytes: number;
  walStatus: string;
  /** The reader's application_name (a sharded relay's instance id), while one reads it. */
  holder: string | null;
}

export interface WalDoctorReport {
  walLevel: string;
  maxSlotWalKeepSize: string;
  slots: WalSlotReport[];
  findings: DoctorFinding[];
  ok: boolean;
}

/**
 * Checks a database for the WAL relay: logical decoding on, a cap on the WAL a slot may hold back (an
 * abandoned slot otherwise fills the primary's disk; unlimited is PostgreSQL's default), and every
 * logical slot's reader and lag. Read-only.
 */
export async function walDoctor(db: SqlExecutor, options: { maxLagBytes?: number } = {}): Promise<WalDoctorReport> {
  const sql = walSql('"unused"', { publication: 'unused' });
  const maxLag = options.maxLagBytes ?? 1024 ** 3;
  const settings = (await db.query<{ wal_level: string; max_slot_wal_keep_size: string; version: number }>(sql.serverSettings)).rows[0] as {
    wal_level: string;
    max_slot_wal_keep_size: string;
  };
  const rows = (
    await db.query<{
      slot_name: string;
      plugin: string;
      database: string;
      active: boolean;
      retained_bytes: number | null;
      lag_bytes: number | null;
      wal_status: string | null;
      holder: string | null;
    }>(sql.slots)
  ).rows;
  const slots: WalSlotReport[] = rows.map((r) => ({
    slot: r.slot_name,
    plugin: r.plugin,
    database: r.database,
    active: r.active,
    retainedBytes: Number(r.retained_bytes ?? 0),
    lagBytes: Number(r.lag_bytes ?? 0),
    walStatus: r.wal_status ?? 'unknown',
    holder: r.active ? (r.holder ?? null) : null,
  }));
  const findings: DoctorFinding[] = [];
  if (settings.wal_level !== 'logical') {
    findings.push({
      severity: 'error',
      subject: 'postgres',
      setting: 'wal_level',
      actual: settings.wal_level,
      expected: 'logical',
      message: 'relay --mode wal needs logical decoding (set wal_level = logical and restart PostgreSQL)',
    });
  }
  if (settings.max_slot_wal_keep_size === '-1') {
    findings.push({
      severity: 'warning',
      subject: 'postgres',
      setting: 'max_slot_wal_keep_size',
      actual: 'unlimited',
      expected: 'a limit (e.g. 10GB)',
      message: 'a slot nobody reads keeps every WAL segment until the disk is full; a limit invalidates it instead',
    });
  }
  for (const slot of slots) {
    const subject = `slot:${slot.slot}`;
    if (!slot.active) {
      findings.push({
        severity: 'warning',
        subject,
        setting: 'active',
        actual: 'false',
        expected: 'true',
        message: `no relay reads this slot; it holds back ${mb(slot.retainedBytes)} of WAL (drop it with \`zeroloss relay --mode wal --drop-slot --slot ${slot.slot}\` if it is abandoned)`,
      });
    }
    if (slot.walStatus === 'lost') {
      findings.push({
        severity: 'error',
        subject,
        setting: 'wal_status',
        actual: 'lost',
        expected: 'reserved',
        message: 'the WAL this slot needs was removed (max_slot_wal_keep_size): drop and create it again; the outbox is the safe point',
      });
    } else if (slot.lagBytes > maxLag) {
      findings.push({
        severity: 'warning',
        subject,
        setting: 'lag',
        actual: mb(slot.lagBytes),
        expected: `<= ${mb(maxLag)}`,
        message: 'its reader is far behind: WAL written since its confirmed position',
      });
    }
  }
  return {
    walLevel: settings.wal_level,
    maxSlotWalKeepSize: settings.max_slot_wal_keep_size,
    slots,
    findings,
    ok: findings.every((f) => f.severity !== 'error'),
  };
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
