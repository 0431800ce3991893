import { randomInt } from 'node:crypto';
import { progressLine, summaryJson, summaryText } from '../../demo/demo-report.ts';
import { type DemoProgress, runDemo } from '../../demo/run-demo.ts';
import { SCENARIOS, type ScenarioName, scenarios } from '../../demo/scenarios.ts';
import { ZerolossError } from '../../core/errors.ts';
import { intOption, parse, withDefaultUser } from '../args.ts';

export const demoHelp = `Usage: zeroloss demo [lottery|points|orders] [options]

Runs one of the example systems end to end while killing its relay and consumers, failing handlers and
duplicating messages, then counts from the database rows whether anything was lost or applied twice.
Delivery is at-least-once; the business effect of each committed message is applied exactly once.

  lottery (default)  E1: a user draws; the award row (user_strategy_export, with mq_state) is the outbox;
                     the delivery service dispatches by prize type (physical 5 retries, virtual 1,
                     coupon the default 3, 2 s apart), idempotent by order id, in order per user
  points             E2: an order and its "deduct N points" message commit together (outbox table); the
                     points service applies it once (balance + ledger + inbox); overdrafts are dead-lettered
  orders             E3: an order and one "order placed" message commit together (outbox table); inventory,
                     budget and points each consume it in their own consumer group with their own inbox
                     rows and deduct once (stock movement, budget entry, points ledger row); after the run a
                     business-level reconciliation compares orders with the three services' rows by order id,
                     repairs "order placed but X not deducted", and runs again, which must find nothing

  --users <n>          users (points: accounts, orders: customers) (default 200)
  --draws <n>          draws (points, orders: orders) in total, spread over the users (default 3000)
  --rate <n>           at most this many draws or orders per second (default 250)
  --pg <url>           Postgres instead of the embedded PGlite: a fresh schema, dropped afterwards; the relay
                       and consumers then run as child processes (a URL without a user connects as
                       $PGUSER, else as postgres)
  --kafka <brokers>    Kafka instead of the table log: fresh topics, deleted afterwards
  --redis <url>        Redis Streams instead of the table log (redis://127.0.0.1:6379): fresh topics under a
                       fresh key prefix, deleted afterwards
  --rabbitmq <url>     RabbitMQ instead of the table log (amqp://guest:guest@127.0.0.1:5672): fresh topics
                       (stream queues) and the group's offset queues, deleted afterwards
  --seed <n>           seed of the workload and the fault plan (default: random, printed)
  --kill-every-ms <n>  mean time between two kills (default 2000)
  --retry-delay-ms <n> delay between a handler's retries (default 2000, the source's policy)
  --timeout-ms <n>     how long to wait for every message to settle once the faults stop (default 120000)
  --skip-points <n>    orders: the points service acknowledges n orders without deducting (a deliberate
                       defect the messaging cannot see); the business reconciliation must find and repair
                       exactly those orders, named in the result (default 0)
  --keep               keep the database (directory or schema) and topics for inspection
  --json               print the result as one JSON object (progress still goes to stderr)
  --dashboard          serve the dashboard (docs/dashboard.md) on 127.0.0.1 while the demo runs, and after
                       it until Ctrl-C (then the demo's data is removed, unless --keep)
  --dashboard-port <n> its port (default 9466)

Without --pg the database is a file-backed PGlite in a fresh temporary directory and the relay and the
two consumers run as worker threads; without --kafka, --redis or --rabbitmq (at most one of them) the
transport is the table log in that database.

Faults: the relay, consumer-1 and consumer-2 are killed in turn, without warning (worker thread
terminated and its database session dropped, or SIGKILL), and started again, until the workload is done
and each was killed at least once. Every 500 ms a few records the transport already holds are
published to it again, as broker-level duplicates. Handlers fail by a plan fixed by the seed: about 4%
fail 1..N times and then succeed within their type's policy; in the lottery 1% fail once more than their
policy allows and 0.5% fail permanently; in points an overdraft is a permanent failure; in orders each
service's deduction fails transiently by its own plan and nothing is dead-lettered.

The retry counts and the 2 s between retries are the source's. Retries block their user's lane (a
user's awards are applied in order), so a user whose prize fails 5 times holds that user's later awards
for 10 s; a shorter --retry-delay-ms settles sooner. After a consumer is killed, only the records whose
handler was running come back as poison suspects and run alone; those that were waiting for a retry
start again at once and go on from their next attempt. The lottery's summary gives the
retry floor: the earliest the last message could settle given when each was published and the retries
its planned failures cost at this delay, one after another per user, all else free. The time beyond it
is what throughput and recovery from the kills cost; compare that between two retry delays, not the
elapsed times (a user whose prizes fail 9 times in all waits 18 s at 2 s, 2.25 s at 250 ms). Each
consumer's partition moves are printed as they happen.

Counting: committed, published, delivered, dead-lettered, lost, applied twice and order violations are
counted from the rows (award rows or orders, delivery or ledger rows, dead letters). Duplicates skipped
and retried come from the consumers' events (a killed consumer's last few may be missing). Exit code 0
only when lost, applied twice and order violations are 0, the dead letters are exactly the expected ones,
(points) the balances reconcile, (orders) every stock item and account matches its entries and the business
reconciliation found exactly the skipped deductions, repaired them and then found nothing, and everything
settled before the timeout; 1 otherwise. In orders, lost and applied twice are counted per service.`;

export async function demoCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    users: { type: 'string' },
    draws: { type: 'string' },
    rate: { type: 'string' },
    pg: { type: 'string' },
    kafka: { type: 'string' },
    redis: { type: 'string' },
    rabbitmq: { type: 'string' },
    seed: { type: 'string' },
    'kill-every-ms': { type: 'string' },
    'retry-delay-ms': { type: 'string' },
    'timeout-ms': { type: 'string' },
    'skip-points': { type: 'string' },
    keep: { type: 'boolean' },
    json: { type: 'boolean' },
    dashboard: { type: 'boolean' },
    'dashboard-port': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    console.log(demoHelp);
    return 0;
  }
  const name = positionals[0] ?? 'lottery';
  if (positionals.length > 1 || !(SCENARIOS as readonly string[]).includes(name)) {
    throw new ZerolossError('ZL_INVALID_CONFIG', `demo takes one of ${SCENARIOS.join(', ')}, got ${positionals.join(' ')}`);
  }
  const scenario = scenarios[name as ScenarioName];
  const users = intOption(values.users, 'users', 200);
  const units = intOption(values.draws, 'draws', 3_000);
  const rate = intOption(values.rate, 'rate', 250);
  if (users < 1 || units < 1 || rate < 1) throw new ZerolossError('ZL_INVALID_CONFIG', '--users, --draws and --rate must be at least 1');
  const skipPoints = intOption(values['skip-points'], 'skip-points', 0);
  if (skipPoints > 0 && name !== 'orders') throw new ZerolossError('ZL_INVALID_CONFIG', '--skip-points applies to the orders demo only');
  if (skipPoints > units) throw new ZerolossError('ZL_INVALID_CONFIG', `--skip-points ${skipPoints} exceeds the ${units} orders`);
  const brokerFlags = (['kafka', 'redis', 'rabbitmq'] as const).filter((f) => values[f] !== undefined);
  if (brokerFlags.length > 1) {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      `demo takes at most one of --kafka, --redis and --rabbitmq, got ${brokerFlags.map((f) => `--${f}`).join(' and ')}`,
    );
  }
  for (const f of ['redis', 'rabbitmq'] as const) {
    if (values[f] !== undefined && values[f].trim() === '') throw new ZerolossError('ZL_INVALID_CONFIG', `--${f} needs a URL`);
  }
  const kafka = values.kafka
    ?.split(',')
    .map((b) => b.trim())
    .filter(Boolean);

  const tty = process.stderr.isTTY === true;
  const info = (line: string) => process.stderr.write(`${tty ? '\r\x1b[K' : ''}${line}\n`);
  const progress = (p: DemoProgress) => {
    const line = progressLine(p, scenario.unit);
    // On a terminal one line is rewritten in place; in a log, one line per second.
    if (tty) process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns ?? 200) - 1)}`);
    else process.stderr.write(`${line}\n`);
  };

  info(`zeroloss demo ${name}: ${scenario.title}`);
  let printed = false;
  const printSummary = (r: Awaited<ReturnType<typeof runDemo>>) => {
    if (printed) return;
    printed = true;
    if (tty) process.stderr.write('\n');
    process.stdout.write(values.json ? `${JSON.stringify(summaryJson(r), null, 2)}\n` : `${summaryText(r)}\n`);
  };
  const result = await runDemo({
    scenario: scenario.name,
    users,
    units,
    rate,
    pgUrl: values.pg === undefined ? undefined : withDefaultUser(values.pg),
    kafka: kafka && kafka.length > 0 ? kafka : undefined,
    redis: values.redis,
    rabbitmq: values.rabbitmq,
    seed: values.seed === undefined ? randomInt(1, 2 ** 31) : intOption(values.seed, 'seed', 0),
    keep: values.keep === true,
    killEveryMs: intOption(values['kill-every-ms'], 'kill-every-ms', 2_000),
    retryDelayMs: intOption(values['retry-delay-ms'], 'retry-delay-ms', 2_000),
    settleTimeoutMs: intOption(values['timeout-ms'], 'timeout-ms', 120_000),
    skipPoints,
    onInfo: info,
    onProgress: progress,
    dashboard: values.dashboard
      ? {
          port: intOption(values['dashboard-port'], 'dashboard-port', 9466),
          hold: (url, done) => {
            // The result first, then the page to look at it from.
            printSummary(done);
            info(`the dashboard stays up at ${url}/ until Ctrl-C`);
            return new Promise<void>((resolve) => {
              process.once('SIGINT', () => resolve());
              process.once('SIGTERM', () => resolve());
            });
          },
        }
      : undefined,
  });
  if (tty && !printed) process.stderr.write('\n');
  const kept = result.kept;
  if (kept) {
    const what = [
      kept.directory,
      kept.schema && `schema ${kept.schema}`,
      kept.topics?.length && `topics ${kept.topics.join(', ')}`,
      kept.prefix && `Redis key prefix ${kept.prefix}`,
    ];
    info(`kept for inspection: ${what.filter(Boolean).join('; ')}`);
  }
  printSummary(result);
  return result.ok ? 0 : 1;
}
