/**
 * `npm run faults -- embedded-host-kill [--messages N] [--keys N] [--seed S] [--stall-seconds N] [--json]
 * [--rate R] [--broken effect-outside-transaction]`: the embedded scenario (faults/embedded-host-kill.ts), run on its own
 * because it needs none of the suite's environment (Kafka cluster, Postgres, Redis, proxies).
 */
import { runEmbeddedHostKill } from './embedded-host-kill.ts';
import { machine, type RunReport, table } from './report.ts';

/** Options of the suite that mean something here; the others are refused by name. */
const APPLIES = new Set(['messages', 'keys', 'seed', 'json', 'stall-seconds', 'broken', 'rate', 'help']);

export async function embeddedCommand(values: Record<string, string | boolean | undefined>, command: string): Promise<number> {
  const fail = (message: string): number => {
    process.stderr.write(`faults: ${message}\n`);
    return 2;
  };
  const other = Object.keys(values).filter((k) => values[k] !== undefined && !APPLIES.has(k));
  if (other.length > 0)
    return fail(`embedded-host-kill takes none of ${other.map((k) => `--${k}`).join(', ')}: it runs on its own PGlite directory`);
  const positive = (name: string, fallback: number): number | undefined => {
    const v = values[name];
    if (v === undefined) return fallback;
    const n = Number(v);
    return Number.isSafeInteger(n) && n >= 1 ? n : undefined;
  };
  const messages = positive('messages', 10_000);
  const keys = positive('keys', 100);
  const stallSeconds = positive('stall-seconds', 45);
  const rate = positive('rate', 200);
  const seed = values.seed === undefined ? Math.floor(Math.random() * 1_000_000) : positive('seed', 0);
  if (messages === undefined || keys === undefined || stallSeconds === undefined || seed === undefined || rate === undefined)
    return fail('--messages, --keys, --seed, --rate and --stall-seconds take positive integers');
  if (values.broken !== undefined && values.broken !== 'effect-outside-transaction')
    return fail('with embedded-host-kill, --broken takes effect-outside-transaction');
  const broken = values.broken as 'effect-outside-transaction' | undefined;

  const startedAt = Date.now();
  const log = (line: string) => process.stderr.write(`[faults ${((Date.now() - startedAt) / 1000).toFixed(1).padStart(6)}s] ${line}\n`);
  log(
    `${command}: seed ${seed}, ${messages} messages over ${keys} keys, embedded PGlite + table log${broken ? `, BROKEN BUILD: ${broken}` : ''}`,
  );
  const result = await runEmbeddedHostKill({ messages, keys, seed, rate, stallSeconds, broken, log });
  log(
    `${result.scenario}: ${result.pass ? 'pass' : 'FAIL'} in ${result.durationSeconds} s — ` +
      Object.entries(result.figures)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') +
      `; ${result.details.lives} lives (${result.details.killedWhileOpening} killed while opening), reopened in ${result.details.meanOpenMs} ms mean, ${result.details.maxOpenMs} ms max`,
  );
  const report: RunReport = {
    command,
    seed,
    messages,
    keys,
    transport: 'table-log',
    relayMode: 'poll',
    kafka: 'not used',
    broker: 'the table log in the host PGlite directory (log_record)',
    broken: broken ?? null,
    machine: machine(result.details.database),
    startedAt: new Date(startedAt).toISOString(),
    totalSeconds: Math.round((Date.now() - startedAt) / 100) / 10,
    pass: result.pass,
    scenarios: [result],
  };
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else
    process.stdout.write(
      `\n${table(report.scenarios)}\n\nembedded: seed ${seed}, ${messages} messages over ${keys} keys, ${report.totalSeconds} s in all\n`,
    );
  log(`${report.pass ? 'PASS' : 'FAIL'}: embedded-host-kill`);
  return report.pass ? 0 : 1;
}
