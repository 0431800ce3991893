/**
 * `node bench/wal-cost.ts [messages] [--json]`: what each write path of the outbox costs in WAL, counted
 * rather than timed, so the figures repeat on a busy machine. On a throwaway PostgreSQL with
 * wal_level=logical it commits `messages` outbox rows the way the relay bench fills them (10 per
 * transaction, 8 transactions at once, 100 keys), then drains them with the WAL relay and, after a second
 * fill, with the polling relay, both publishing to a stand-in broker that acknowledges at once (the broker is
 * not what is measured). For each path: WAL records and bytes per message (`pg_waldump --stats` over the
 * path's LSN range) and the records by type. For the stream: the walsender's CPU per message while
 * `pg_recvlogical` (the fastest reader there is) reads the range through the outbox's publication, once the
 * enqueues alone and once enqueues and the WAL relay's record statements, which share the WAL a walsender
 * reads. The reference row is the floor issue #14's insert-only outbox aims at: the same messages inserted
 * into a table with a primary key only (bench/lib/insert-only-outbox.ts, the relay bench's floor). A
 * walsender pays per WAL record it reads, whatever table it belongs to (docs/benchmarks.md, "2026-12-06
 * night").
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { asPostgres, postgresBinDir } from '../infra/services/postgres-instance.ts';
import { PostgresOutboxStore } from '../src/adapters/postgres/postgres-outbox-store.ts';
import { Relay } from '../src/outbox/relay.ts';
import { WalRelay } from '../src/outbox/wal-relay.ts';
import { ScriptedPublisher } from '../test/helpers/scripted-publisher.ts';
import { testOutbox } from '../test/helpers/test-outbox.ts';
import { insertOnlyOutbox } from './lib/insert-only-outbox.ts';
import { until } from './lib/measure.ts';
import { slotReleased, walBenchDatabase } from './lib/wal-database.ts';
import { fillOutbox, RELAY_BATCH, RELAY_CONCURRENCY } from './relay.ts';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const messages = Number(args[0] ?? 20_000);
const json = process.argv.includes('--json');
const KEYS = 100;
const bin = postgresBinDir();

interface WalRange {
  records: number;
  bytes: number;
  byType: Record<string, number>;
}

/** `pg_waldump --stats=record` over [from, to): records and bytes in all, and records per type. */
async function walRange(dataDir: string, from: string, to: string): Promise<WalRange> {
  const stdout = await asPostgres(join(bin, 'pg_waldump'), ['-p', join(dataDir, 'pg_wal'), '-s', from, '-e', to, '--stats=record']);
  const byType: Record<string, number> = {};
  let records = 0;
  let bytes = 0;
  for (const line of stdout.split('\n')) {
    const m = /^(\S+)\s+(\d+)\s/.exec(line);
    if (!m) continue;
    const numbers = [...line.matchAll(/(\d+)\s+\[/g)].map((x) => Number(x[1]));
    if (m[1] === 'Total') {
      records = Number(m[2]);
      bytes = numbers[numbers.length - 1] ?? 0;
    } else if (Number(m[2]) > 0) byType[m[1] as string] = Number(m[2]);
  }
  return { records, bytes, byType };
}

function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

/** The walsender's CPU seconds while pg_recvlogical reads `slot` up to `to` into /dev/null. */
async function walsenderSeconds(
  url: URL,
  slot: string,
  publication: string,
  to: string,
  query: (sql: string, params: unknown[]) => Promise<{ rows: { pid: number }[] }>,
): Promise<number> {
  const child = spawn(
    join(bin, 'pg_recvlogical'),
    [
      '-h',
      url.hostname,
      '-p',
      url.port,
      '-U',
      'postgres',
      '-d',
      url.pathname.slice(1),
      '--slot',
      slot,
      '--start',
      '-E',
      to,
      '--no-loop',
      '-f',
      '/dev/null',
      '-o',
      'proto_version=1',
      '-o',
      `publication_names=${publication}`,
      '-o',
      'binary=true',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  let done = false;
  void exited.then(() => {
    done = true;
  });
  let pid: number | undefined;
  await until(async () => {
    if (done) return true;
    const { rows } = await query('select active_pid as pid from pg_replication_slots where slot_name = $1 and active', [slot]);
    pid = rows[0]?.pid;
    return pid !== undefined;
  }, 'pg_recvlogical to take the slot');
  let last = 0;
  while (!done && pid !== undefined) {
    last = cpuTicks(pid) ?? last;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  if ((await exited) !== 0) throw new Error(`pg_recvlogical on ${slot} failed`);
  return last / 100;
}

// The stand-in broker: the project's publisher double, accepting every record at once.
const publisher = new ScriptedPublisher();
const db = await walBenchDatabase({ pgUrl: '', brokers: [], log: console.error }, 'bench-wal-cost', 'zlb_walcost');
const { s, wal } = db;
const url = new URL(db.url);
const q = (sql: string, params: unknown[] = []) => s.pool.query(sql, params);
const lsn = async () => (await q('select pg_current_wal_lsn()::text as l')).rows[0].l as string;
const outbox = testOutbox({ schema: s.schema, producerId: 'bench' });
const fill = (offset: number) =>
  fillOutbox({ transaction: (fn) => s.db.transaction(fn), outbox, topic: 't', messages, keys: KEYS, offset });
// Named after the schema, so a run that died before its clean-up does not collide with the next one.
const slots = { enqueue: `${s.schema}_enqueue`, recorded: `${s.schema}_recorded` };
const insertOnly = await insertOnlyOutbox(db);
try {
  await wal.createSlot('bench');
  for (const slot of Object.values(slots)) await q(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
  await q('checkpoint');

  // Enqueue, then the WAL relay's drain: the walsender of the relay's own slot reads both.
  const a = await lsn();
  await fill(0);
  const b = await lsn();
  const relay = new WalRelay({ stream: wal.stream, ledger: wal.ledger, publisher, config: { walBatchSize: 2_000 } });
  let streamed = 0;
  relay.on('batch', (e) => {
    streamed += e.sent + e.resent;
  });
  await relay.start();
  await until(() => streamed >= messages, 'the WAL relay to record every row');
  await relay.stop();
  const c = await lsn();
  await slotReleased(s.pool, wal.slot);
  await wal.dropSlot();

  // The polling relay on a second fill of the same size.
  await fill(messages);
  const d = await lsn();
  const polling = new Relay({
    sources: new PostgresOutboxStore(s.db, { schema: s.schema }),
    publisher,
    config: { batchSize: RELAY_BATCH, concurrency: RELAY_CONCURRENCY },
  });
  await polling.start();
  await until(
    async () => (await q(`select count(*)::int as n from "${s.schema}".outbox where state <> 1`)).rows[0].n === 0,
    'the polling relay to send every row',
  );
  await polling.stop();
  const e = await lsn();

  // The floor: the same messages into a primary-key-only outbox (bench/lib/insert-only-outbox.ts), same
  // transactions; its fill makes its slot first, whose few records count here too.
  const f = await lsn();
  await insertOnly.fill('t', messages, KEYS);
  const g = await lsn();

  const paths = {
    enqueue: await walRange(db.dataDir, a, b),
    walRelayRecord: await walRange(db.dataDir, b, c),
    pollingRelay: await walRange(db.dataDir, d, e),
    referenceInsertOnly: await walRange(db.dataDir, f, g),
  };
  const walsenderUs = {
    enqueue: ((await walsenderSeconds(url, slots.enqueue, wal.publication, b, q)) / messages) * 1e6,
    enqueueAndRecord: ((await walsenderSeconds(url, slots.recorded, wal.publication, c, q)) / messages) * 1e6,
    referenceInsertOnly: ((await walsenderSeconds(url, insertOnly.slot, insertOnly.publication, g, q)) / messages) * 1e6,
  };
  const version = (await q('show server_version')).rows[0].server_version as string;
  const perMessage = Object.fromEntries(
    Object.entries(paths).map(([name, r]) => [
      name,
      {
        records: Number((r.records / messages).toFixed(2)),
        bytes: Math.round(r.bytes / messages),
        byType: Object.fromEntries(Object.entries(r.byType).map(([t, n]) => [t, Number((n / messages).toFixed(2))])),
      },
    ]),
  );
  const result = {
    messages,
    postgres: version,
    perMessage,
    walsenderCpuUsPerMessage: Object.fromEntries(Object.entries(walsenderUs).map(([k, v]) => [k, Number(v.toFixed(1))])),
  };
  if (json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(`WAL per message, ${messages} messages over ${KEYS} keys, PostgreSQL ${version}`);
    for (const [name, r] of Object.entries(perMessage)) {
      const top = Object.entries(r.byType)
        .sort((x, y) => y[1] - x[1])
        .slice(0, 6)
        .map(([t, n]) => `${t} ${n}`)
        .join(', ');
      console.log(`  ${name.padEnd(20)} ${String(r.records).padStart(6)} records ${String(r.bytes).padStart(6)} bytes  (${top})`);
    }
    console.log('walsender CPU per message, read by pg_recvlogical through the publication:');
    for (const [name, us] of Object.entries(result.walsenderCpuUsPerMessage)) console.log(`  ${name.padEnd(20)} ${us} µs`);
  }
} finally {
  for (const slot of Object.values(slots))
    await q('select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1', [slot]).catch(() => {});
  await insertOnly.close();
  await db.close();
}
