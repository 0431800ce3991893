import { quoteIdent } from '../../../core/identifier.ts';
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
  const settings = (await db.query<{ database: string; wal_level: string; max_slot_wal_keep_size: string }>(sql.serverSettings))
    .rows[0] as {
    database: string;
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
  for (const slot of await unrecordedSlots(db, sql.slotTableSchemas, slots, settings.database)) {
    findings.push({
      severity: slot.beingCreated ? 'warning' : 'error',
      subject: `slot:${slot.slot}`,
      setting: 'hand-over',
      actual: slot.beingCreated ? 'being created' : 'not recorded',
      expected: `recorded in ${slot.schema}.wal_slot`,
      message: slot.beingCreated
        ? 'a --create-slot is handing the rows committed before this slot to the polling path; relays stand by until it commits'
        : 'a --create-slot stopped before handing the rows committed before this slot over: relays stand by on it and nothing is sent. ' +
          'Run `zeroloss relay --mode wal --create-slot` again (it makes the slot anew)',
    });
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

/**
 * zeroloss slots of this database (named `zeroloss_<schema>` or `zeroloss_<schema>_s<n>` after a schema
 * that records its hand-overs, migration 20) without a record: the leftover of a --create-slot that died
 * between creating the slot and committing its hand-over, or one in progress (its creation lock is held).
 * Slots named otherwise (`--slot`, other tools' slots) are not judged: nothing says whose they are.
 */
async function unrecordedSlots(
  db: SqlExecutor,
  slotTableSchemas: string,
  slots: WalSlotReport[],
  database: string,
): Promise<Array<{ slot: string; schema: string; beingCreated: boolean }>> {
  const candidates = slots.filter((x) => x.database === database && x.plugin === 'pgoutput' && x.slot.startsWith('zeroloss_'));
  if (candidates.length === 0) return [];
  const { rows: schemas } = await db.query<{ schema: string }>(slotTableSchemas);
  const found: Array<{ slot: string; schema: string; beingCreated: boolean }> = [];
  for (const { schema } of schemas) {
    let q: string;
    try {
      q = quoteIdent(schema, 'schema');
    } catch {
      continue; // not a name zeroloss accepts for its schema: not ours
    }
    const mine = candidates.filter((x) => x.slot === `zeroloss_${schema}` || new RegExp(`^zeroloss_${schema}_s\\d+$`).test(x.slot));
    if (mine.length === 0) continue;
    const sql = walSql(q, { publication: 'unused' });
    const recorded = new Set((await db.query<{ slot_name: string }>(sql.recordedSlots)).rows.map((r) => r.slot_name));
    for (const slot of mine) {
      if (recorded.has(slot.slot)) continue;
      const free = (await db.query<{ done: boolean }>(sql.slotCreationFree, [slot.slot])).rows[0]?.done === true;
      found.push({ slot: slot.slot, schema, beingCreated: !free });
    }
  }
  return found;
}
