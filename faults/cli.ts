/**
 * The fault suite: `npm run faults -- <scenario|all|mixed> [options]`. See docs/reliability.md.
 *
 * Each scenario runs the real relay and consumer processes against real Kafka, Postgres and Redis while a
 * nemesis injects its faults, then heals, drains and checks from the databases and the topic. Exit code 0
 * only if every scenario has lost, appliedTwice, phantom and orderViolations at 0, the dead-lettered set is
 * exactly the messages meant to fail, and the run drained.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { type KafkaMode, startEnvironment, TRANSPORTS, type TransportKind } from './environment.ts';
import { killAllChildren } from './processes.ts';
import { machine, type RunReport, table } from './report.ts';
import { type Broken, DEFAULT_KEYS, EXACTLY_ONCE, type ExactlyOnce, runScenario, type ScenarioResult } from './run-scenario.ts';
import { refusedWith } from './exactly-once.ts';
import { inRelayMode, type RelayMode, SCENARIOS, type Scenario } from './scenarios.ts';
import { refusedWithStateColumn, SOURCE_KINDS, type SourceKind } from './state-column.ts';

const USAGE = `usage: npm run faults -- <scenario[,scenario...]|all> [options]
       npm run faults -- --transport redis|rabbitmq|table-log [<scenario[,scenario...]|all>]

scenarios (transports other than kafka in brackets):
${SCENARIOS.map((s) => `  ${s.name.padEnd(22)} ${s.summary}${(s.transports ?? ['kafka']).some((t) => t !== 'kafka') ? ` [${(s.transports ?? []).join(', ')}]` : ''}`).join('\n')}
  all                    every scenario above that runs on the transport, in this order (not transport-faults,
                         the short version for npm test); the default with --transport
  embedded-host-kill     the embedded default (one file-backed PGlite with business tables, outbox, inbox and
                         table log; relay and consumer in the same host process, faults/embedded-host.ts)
                         SIGKILLed 12-40 times at varying points (a few while reopening) and reopened on the
                         same directory until N messages are committed, then drained by a last life and checked
                         from the directory. Runs alone: needs no Kafka, Postgres or Redis, takes --messages,
                         --keys (default 100), --seed, --rate (default 200), --stall-seconds, --json and
                         --broken effect-outside-transaction only; not part of all

options:
  --transport T          kafka (default), redis (Redis Streams on a throwaway redis-server with appendonly yes,
                         appendfsync always), rabbitmq (a throwaway RabbitMQ node on its own ports) or
                         table-log (the log in tables of the scenario's schema in the run's Postgres,
                         src/adapters/table-log; the checker reads log_record itself)
  --messages N           committed messages per scenario (default 10000)
  --keys N               keys the messages are spread over (default ${DEFAULT_KEYS} on kafka, 100 on redis and rabbitmq)
  --seed S               seed of the workload and the fault schedule (default: random, printed)
  --json                 print the report as JSON on stdout (progress goes to stderr)
  --rate R               target committed messages per second (default 400; slower if a scenario needs time)
  --kafka cluster|single the 3-node cluster this run owns (default), or the shared single node on 9092
                         (scenarios that need the cluster are then refused)
  --stall-seconds N      stop draining when nothing moved for N s (default 45)
  --source outbox|state-column
                         what the workload writes and the relays relay: the outbox table (default), or a
                         business table with its own send state (the lottery's user_strategy_export with
                         mq_state, declared in a settings file: zeroloss relay --config-file f --only-sources);
                         Kafka, polling relay and the inbox consumer only; relay, Postgres and Kafka faults
                         (consumer-side scenarios and two-producers are refused, reason given)
  --relay-mode poll|wal   the polling relay (default), or the WAL relay (\`zeroloss relay --mode wal\`, docs/wal-relay.md):
                         Postgres runs with wal_level=logical, relay-1 of three creates the slot
                         (--create-slot), the others stand by; Kafka only. Scenarios that make no sense
                         there are refused with the reason; wal-slot-lost runs only there
  --insert-only          with --relay-mode wal: relay-1 creates the slot with --insert-only (the outbox's
                         insert-only mode, docs/wal-relay.md: one row per batch records the sends)
  --offsets broker|database
                         where consumers keep their offsets: the broker's group (default), or their own
                         database, committed with the effects (P10, offsetStore: 'database'; Kafka only)
  --exactly-once inbox|kafka-transactions
                         how consumers make effects exactly once: the inbox consumer (default; effect and
                         inbox row in one Postgres transaction), or Kafka transactions (P10,
                         KafkaTransactionalProcessor, faults/transactional-worker.ts): each order becomes
                         one record on <topic>.out, committed with the input offsets in one Kafka
                         transaction; the checker reads <topic>.out and <topic>.dlq with read_committed.
                         Kafka only; handler-faults, poison, mixed and redis-outage are refused (reason given)
  --broken NAME          TEST-ONLY deliberately broken build, to prove the checker fails:
                           relay-ack-before-send       relays record rows sent before sending (faults/broken-relay.ts;
                                                       with --source state-column, the award table's rows; on
                                                       every transport)
                           claim-without-key-hold      relays claim the oldest due rows without holding back a
                                                       key whose earlier row another relay holds (leased by a
                                                       frozen or dead relay), so its later rows overtake it
                                                       (faults/claim-without-key-hold.ts; relay-zombie)
                           effect-outside-transaction  the handler writes its effect outside the inbox transaction
                                                       (with embedded-host-kill: in its own transaction after the
                                                       inbox row's, faults/effect-after-inbox-commit.ts)
                           producer-without-key-lock   producers number a key's messages without its lock
                                                       (faults/outbox-without-key-lock.ts; two-producers)
                           wal-confirm-before-send     WAL relays confirm each commit to the slot as it
                                                       arrives, before sending it
                                                       (faults/wal-relay-confirm-before-send.ts; --relay-mode wal)
                           offsets-outside-transaction the Kafka-transactions processors' input offsets are
                                                       committed through the group as records are handed over,
                                                       outside (before) the transaction with their outputs
                                                       (faults/offsets-outside-transaction.ts;
                                                       --exactly-once kafka-transactions)
                           db-offsets-outside-transaction
                                                       consumers keeping offsets in the database write them
                                                       at once on a connection of their own, not in the
                                                       effect transaction (faults/db-offsets-outside-transaction.ts;
                                                       --offsets database)
                           log-offsets-before-effect   consumers commit each batch's offsets in the table log as
                                                       it is handed over, before its effects
                                                       (faults/commit-on-handover.ts; --transport table-log)
                           ids-follow-clock            the producer gives each message a UUIDv7 of its clock's
                                                       reading, not the outbox's generator, so ids go back with
                                                       the clock (faults/ids-follow-clock.ts; clock-step)`;

const BROKEN: readonly Broken[] = [
  'relay-ack-before-send',
  'claim-without-key-hold',
  'effect-outside-transaction',
  'producer-without-key-lock',
  'wal-confirm-before-send',
  'offsets-outside-transaction',
  'db-offsets-outside-transaction',
  'log-offsets-before-effect',
  'ids-follow-clock',
];

function fail(message: string): never {
  process.stderr.write(`faults: ${message}\n`);
  process.exit(2);
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    messages: { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'boolean' },
    rate: { type: 'string' },
    kafka: { type: 'string' },
    transport: { type: 'string' },
    keys: { type: 'string' },
    'stall-seconds': { type: 'string' },
    source: { type: 'string' },
    broken: { type: 'string' },
    offsets: { type: 'string' },
    'exactly-once': { type: 'string' },
    'relay-mode': { type: 'string' },
    'insert-only': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});
// Loaded only here: the other scenarios need no PGlite.
if (positionals.length === 1 && positionals[0] === 'embedded-host-kill' && !values.help) {
  const { embeddedCommand } = await import('./embedded-command.ts');
  process.exit(await embeddedCommand(values, `npm run faults -- ${process.argv.slice(2).join(' ')}`));
}
const transport = (values.transport ?? 'kafka') as TransportKind;
if (!TRANSPORTS.includes(transport)) fail(`--transport must be one of ${TRANSPORTS.join(', ')}, got ${values.transport}`);
if (values.help || positionals.length > 1 || (positionals.length === 0 && values.transport === undefined)) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(values.help ? 0 : 2);
}
const positiveInt = (v: string | undefined, name: string, fallback: number) => {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) fail(`--${name} must be a positive integer, got ${v}`);
  return n;
};
const relayMode = (values['relay-mode'] ?? 'poll') as RelayMode;
if (relayMode !== 'poll' && relayMode !== 'wal') fail(`--relay-mode must be poll or wal, got ${values['relay-mode']}`);
const insertOnly = values['insert-only'] === true;
if (insertOnly && relayMode !== 'wal') fail('--insert-only is a WAL relay mode: add --relay-mode wal');
// The WAL relay is wired to Kafka here (the CLI's --mode wal takes --kafka); the fault processes for Redis
// Streams and RabbitMQ are polling relays.
if (relayMode === 'wal' && transport !== 'kafka')
  fail('--relay-mode wal runs on --transport kafka only (zeroloss relay --mode wal sends to Kafka)');
const runsOn = (s: Scenario) =>
  (s.transports ?? ['kafka']).includes(transport) &&
  !('refused' in inRelayMode(s, relayMode)) &&
  !refusedWith((values['exactly-once'] ?? 'inbox') as ExactlyOnce, s);
const source = (values.source ?? 'outbox') as SourceKind;
if (!SOURCE_KINDS.includes(source)) fail(`--source must be one of ${SOURCE_KINDS.join(', ')}, got ${values.source}`);
const withSource = (s: Scenario) => source === 'outbox' || refusedWithStateColumn(s.name) === undefined;
const target = positionals[0] ?? 'all';
const names =
  target === 'all'
    ? SCENARIOS.filter((s) => runsOn(s) && withSource(s) && s.name !== 'transport-faults').map((s) => s.name)
    : target.split(',');
const chosen: Scenario[] = names.map((name) => SCENARIOS.find((s) => s.name === name) ?? fail(`unknown scenario '${name}'\n${USAGE}`));
const elsewhere = chosen.filter((s) => !(s.transports ?? ['kafka']).includes(transport));
if (elsewhere.length > 0) fail(`not on --transport ${transport} (yet): ${elsewhere.map((s) => s.name).join(', ')}`);
const refusals = chosen.flatMap((s) => {
  const version = inRelayMode(s, relayMode);
  return 'refused' in version ? [`  ${s.name}: ${version.refused}`] : [];
});
if (refusals.length > 0) fail(`not with --relay-mode ${relayMode}:\n${refusals.join('\n')}`);
if (source === 'state-column') {
  // `zeroloss relay --mode wal` refuses declared sources; the Redis/RabbitMQ relay workers take none.
  if (transport !== 'kafka' || relayMode !== 'poll') fail('--source state-column runs on --transport kafka with the polling relay');
  const notHere = chosen.flatMap((s) => {
    const why = refusedWithStateColumn(s.name);
    return why === undefined ? [] : [`  ${s.name}: ${why}`];
  });
  if (notHere.length > 0) fail(`not with --source state-column:\n${notHere.join('\n')}`);
}
const selected = chosen.map((s) => inRelayMode(s, relayMode) as Scenario);
const messages = positiveInt(values.messages, 'messages', 10_000);
const seed = values.seed === undefined ? Math.floor(Math.random() * 1_000_000) : positiveInt(values.seed, 'seed', 0);
const rate = positiveInt(values.rate, 'rate', 400);
const stallSeconds = positiveInt(values['stall-seconds'], 'stall-seconds', 45);
const keys = positiveInt(values.keys, 'keys', transport === 'kafka' ? DEFAULT_KEYS : 100);
if (transport !== 'kafka' && values.kafka !== undefined) fail('--kafka applies to --transport kafka only');
const kafka = (transport === 'kafka' ? (values.kafka ?? 'cluster') : 'none') as KafkaMode;
if (transport === 'kafka' && kafka !== 'cluster' && kafka !== 'single') fail(`--kafka must be cluster or single, got ${values.kafka}`);
const offsets = (values.offsets ?? 'broker') as 'broker' | 'database';
if (offsets !== 'broker' && offsets !== 'database') fail(`--offsets must be broker or database, got ${values.offsets}`);
if (offsets === 'database' && transport !== 'kafka') fail('--offsets database is for --transport kafka');
const exactlyOnce = (values['exactly-once'] ?? 'inbox') as ExactlyOnce;
if (!EXACTLY_ONCE.includes(exactlyOnce)) fail(`--exactly-once must be one of ${EXACTLY_ONCE.join(', ')}, got ${values['exactly-once']}`);
if (exactlyOnce === 'kafka-transactions' && transport !== 'kafka') fail('--exactly-once kafka-transactions is for --transport kafka');
if (exactlyOnce === 'kafka-transactions' && offsets === 'database')
  fail('--exactly-once kafka-transactions commits the offsets in the Kafka transaction; drop --offsets database');
if (source === 'state-column' && exactlyOnce !== 'inbox') fail('--source state-column runs with the inbox consumer (--exactly-once inbox)');
const broken = values.broken as Broken | undefined;
if (broken !== undefined && !BROKEN.includes(broken)) fail(`--broken must be one of ${BROKEN.join(', ')}`);
if (broken === 'claim-without-key-hold' && (transport !== 'kafka' || relayMode === 'wal' || source !== 'outbox'))
  fail(
    '--broken claim-without-key-hold breaks the polling relay of the outbox table on Kafka: not with --transport, --relay-mode wal or --source',
  );
if (broken === 'relay-ack-before-send' && relayMode === 'wal')
  fail('--broken relay-ack-before-send is a polling relay; with --relay-mode wal use wal-confirm-before-send');
if (broken === 'ids-follow-clock' && !selected.some((s) => s.steppedClock))
  fail('--broken ids-follow-clock breaks the ids of a producer whose clock steps back: run it with clock-step');
if (broken === 'wal-confirm-before-send' && relayMode !== 'wal')
  fail('--broken wal-confirm-before-send is a WAL relay; add --relay-mode wal');
if (broken === 'log-offsets-before-effect' && transport !== 'table-log')
  fail('--broken log-offsets-before-effect breaks the table log consumers; add --transport table-log');
if (broken === 'db-offsets-outside-transaction' && offsets !== 'database')
  fail('--broken db-offsets-outside-transaction breaks consumers that keep their offsets in the database; add --offsets database');
if (broken === 'offsets-outside-transaction' && exactlyOnce !== 'kafka-transactions')
  fail('--broken offsets-outside-transaction breaks the Kafka-transactions processors; add --exactly-once kafka-transactions');
const notWithVariant = selected.flatMap((s) => {
  const reason = refusedWith(exactlyOnce, s);
  return reason ? [`  ${s.name}: ${reason}`] : [];
});
if (notWithVariant.length > 0) fail(`not with --exactly-once ${exactlyOnce}:\n${notWithVariant.join('\n')}`);
const needCluster = selected.filter((s) => s.needsCluster);
if (kafka === 'single' && needCluster.length > 0) {
  fail(`${needCluster.map((s) => s.name).join(', ')} need the 3-node cluster; drop --kafka single`);
}

const startedAt = Date.now();
const log = (line: string) => process.stderr.write(`[faults ${((Date.now() - startedAt) / 1000).toFixed(1).padStart(6)}s] ${line}\n`);
const command = `npm run faults -- ${process.argv.slice(2).join(' ')}`;

// One run at a time owns the cluster (it is taken down at the end) and its proxy ports; single-node runs
// use free ports only and need no lock.
const LOCK = path.join(tmpdir(), 'zeroloss-faults.lock');
function takeLock(): void {
  for (let tries = 0; tries < 2; tries++) {
    try {
      const fd = openSync(LOCK, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return;
    } catch {
      const holder = Number(readFileSync(LOCK, 'utf8').trim());
      let alive = false;
      try {
        process.kill(holder, 0);
        alive = true;
      } catch {
        alive = false;
      }
      if (alive && holder !== process.pid) fail(`another fault run (pid ${holder}) is in progress (${LOCK})`);
      rmSync(LOCK, { force: true });
    }
  }
  fail(`cannot take ${LOCK}`);
}
function releaseLock(): void {
  try {
    if (Number(readFileSync(LOCK, 'utf8').trim()) === process.pid) rmSync(LOCK, { force: true });
  } catch {
    // not ours, or gone already
  }
}
if (kafka === 'cluster') takeLock();

let closing: Promise<void> | undefined;
let closeEnvironment: () => Promise<void> = async () => {};
const shutdown = (code: number) => {
  closing ??= (async () => {
    killAllChildren();
    await closeEnvironment().catch(() => {});
    releaseLock();
  })();
  void closing.then(() => process.exit(code));
};
process.on('SIGINT', () => shutdown(130));
process.on('SIGTERM', () => shutdown(143));

let report: RunReport | undefined;
try {
  const over = transport === 'kafka' ? `Kafka ${kafka}` : `transport ${transport}`;
  const relays = `${relayMode === 'wal' ? ', WAL relays' : ''}${exactlyOnce === 'kafka-transactions' ? ', Kafka-transactions processors' : ''}`;
  log(
    `${command}: seed ${seed}, ${messages} messages over ${keys} keys per scenario, ${over}${relays}${source === 'outbox' ? '' : `, source ${source}`}${broken ? `, BROKEN BUILD: ${broken}` : ''}`,
  );
  const env = await startEnvironment({ kafka, transport, logicalDecoding: relayMode === 'wal', log });
  closeEnvironment = env.close;
  const versionPool = new pg.Pool({ connectionString: env.postgres.url, max: 1 });
  const pgVersion =
    (await versionPool.query<{ v: string }>("select 'PostgreSQL ' || current_setting('server_version') as v")).rows[0]?.v ?? '?';
  await versionPool.end();
  const results: ScenarioResult[] = [];
  for (const scenario of selected) {
    const result = await runScenario(scenario, {
      env,
      messages,
      keys,
      seed,
      rate,
      stallSeconds,
      broken,
      offsets,
      exactlyOnce,
      relayMode,
      insertOnly,
      source,
      log,
    });
    results.push(result);
    const takeovers = result.details.takeoversMs ?? [];
    log(
      `${scenario.name}: ${result.pass ? 'pass' : 'FAIL'} in ${result.durationSeconds} s — ` +
        Object.entries(result.figures)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ') +
        (takeovers.length > 0 ? `; ${takeovers.length} slot takeovers, max ${Math.max(...takeovers)} ms` : ''),
    );
  }
  report = {
    command,
    seed,
    messages,
    keys,
    transport,
    relayMode,
    ...(insertOnly ? { insertOnly } : {}),
    kafka:
      kafka === 'cluster'
        ? '3-node KRaft cluster, replication factor 3, min.insync.replicas 2'
        : kafka === 'single'
          ? 'single node (shared)'
          : 'not used',
    broker:
      transport === 'redis'
        ? 'throwaway redis-server, appendonly yes, appendfsync always'
        : transport === 'rabbitmq'
          ? 'throwaway RabbitMQ node (stream queues per partition), own ports'
          : transport === 'table-log'
            ? "tables of the scenario's schema in the run's Postgres (log_record, log_group_offset)"
            : 'kafka',
    broken: broken ?? null,
    machine: machine(pgVersion),
    startedAt: new Date(startedAt).toISOString(),
    totalSeconds: 0,
    pass: results.every((r) => r.pass),
    scenarios: results,
  };
} catch (error) {
  log(`run failed: ${(error as Error).stack ?? error}`);
} finally {
  killAllChildren();
  await closeEnvironment().catch((error: Error) => log(`cleanup: ${error.message}`));
  releaseLock();
}

if (!report) process.exit(1);
report.totalSeconds = Math.round((Date.now() - startedAt) / 100) / 10;
if (values.json) {
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
} else {
  process.stdout.write(
    `\n${table(report.scenarios)}\n\n${transport}: seed ${seed}, ${messages} messages over ${keys} keys per scenario, ${report.totalSeconds} s in all\n`,
  );
}
log(`${report.pass ? 'PASS' : 'FAIL'}: ${report.scenarios.filter((r) => r.pass).length}/${report.scenarios.length} scenarios passed`);
process.exit(report.pass ? 0 : 1);
