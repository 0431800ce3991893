/**
 * `npm test`: bring up the single-node Kafka (or reuse a running one), run node:test over the test files,
 * then stop Kafka again if this run started it (unless ZL_KEEP_KAFKA is set).
 *
 *   npm test                                  all test/**\/*.test.ts
 *   npm test -- test/infra/kafka.test.ts      only these files
 *   npm test -- --test-name-pattern=outbox    options (with '=') go to node --test
 *   ZL_KEEP_KAFKA=1 npm test                  leave a Kafka started here running (next run reuses it)
 *   ZL_TEST_CONCURRENCY=1 npm test            test files one at a time (default 2)
 *
 * Two files at a time by default: most of a file's time is waiting (on Kafka, Postgres, child processes,
 * timers) and ~0.8 s of each is process start, so a second file fills those waits. Every test names its
 * own schema, topic, group and throwaway server ports, so files do not meet each other's data. A file that
 * stops a service the others share (the single Kafka node) says `npm-test: alone` in its first lines; those
 * run first, one at a time, with nothing beside them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { globSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import * as path from 'node:path';
import { down, up } from '../infra/kafka/kafka.ts';
import { downSecured, securedRunning } from '../infra/kafka/secured.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const DEFAULT_GLOB = 'test/**/*.test.ts';

const args = process.argv.slice(2);
const nodeOptions = args.filter((a) => a.startsWith('-'));
let files = args.filter((a) => !a.startsWith('-'));
if (files.length === 0) {
  files = globSync(DEFAULT_GLOB, { cwd: ROOT }).sort();
  // Nothing to run: hand node --test the pattern itself, which matches nothing, so it still prints its summary.
  if (files.length === 0) files = [DEFAULT_GLOB];
}

const concurrency = process.env.ZL_TEST_CONCURRENCY ?? '2';
if (!/^[1-9]\d*$/.test(concurrency)) {
  process.stderr.write(`[test] ZL_TEST_CONCURRENCY must be a positive integer, not ${JSON.stringify(concurrency)}\n`);
  process.exit(2);
}

const ALONE_MARK = 'npm-test: alone';
function runsAlone(file: string): boolean {
  try {
    return readFileSync(path.resolve(ROOT, file), 'utf8').slice(0, 4_000).includes(ALONE_MARK);
  } catch {
    return false; // a pattern or a directory: node --test expands it
  }
}

let startedHere = false;
/** The secured broker (TLS/SASL tests) is started by the tests that need it; stopped after the run if it was not running before. */
const securedBefore = await securedRunning();
let child: ChildProcess | undefined;
let stopping: Promise<void> | undefined;
let starting = false;
let interrupted: number | undefined;
let signalled = false;

function stopKafka(): Promise<void> {
  stopping ??= (async () => {
    if (!securedBefore && !process.env.ZL_KEEP_KAFKA && (await securedRunning())) {
      await downSecured().catch((err: unknown) =>
        process.stderr.write(`[test] stopping the secured Kafka failed: ${(err as Error).message}\n`),
      );
    }
    if (!startedHere) return;
    if (process.env.ZL_KEEP_KAFKA) {
      process.stderr.write('[test] ZL_KEEP_KAFKA is set: leaving Kafka running\n');
      return;
    }
    try {
      await down({ mode: 'single' });
    } catch (err) {
      process.stderr.write(`[test] stopping Kafka failed: ${(err as Error).message}\n`);
    }
  })();
  return stopping;
}

async function finish(code: number): Promise<never> {
  await stopKafka();
  process.exit(code);
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    const code = 128 + constants.signals[sig];
    signalled = true;
    if (child && child.exitCode === null && child.signalCode === null) {
      // Let the runner end its tests (on Ctrl-C it got SIGINT from the terminal too); stop Kafka after it exits.
      child.kill(sig);
      return;
    }
    if (starting) {
      // Stopping a half-started node is messy; let up() finish (it has a deadline), then stop it.
      process.stderr.write(`[test] ${sig}: will stop once Kafka start-up completes\n`);
      interrupted = code;
      return;
    }
    void finish(code);
  });
}

try {
  starting = true;
  const kafka = await up({ mode: 'single' }).finally(() => {
    starting = false;
  });
  startedHere = kafka.startedHere;
  if (interrupted !== undefined) await finish(interrupted);
  const brokers = kafka.brokers.join(',');
  process.stderr.write(`[test] Kafka ${brokers} (${startedHere ? 'started for this run' : 'already running, reused'})\n`);

  const alone = files.filter(runsAlone);
  const batches: Array<[string[], string]> = [
    [alone, '1'],
    [files.filter((f) => !alone.includes(f)), concurrency],
  ];
  let exitCode = 0;
  for (const [batch, perBatch] of batches) {
    if (batch.length === 0 || signalled) continue;
    const running = spawn(
      process.execPath,
      ['--test', `--test-concurrency=${perBatch}`, '--test-timeout=600000', ...nodeOptions, ...batch],
      {
        cwd: ROOT,
        stdio: 'inherit',
        env: { ...process.env, ZL_KAFKA_BROKERS: brokers },
      },
    );
    child = running;
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      running.once('error', reject);
      running.once('exit', (c, s) => resolve([c, s]));
    });
    const batchCode = code ?? 128 + (signal ? constants.signals[signal] : 0);
    if (batchCode !== 0 && exitCode === 0) exitCode = batchCode;
  }
  await finish(exitCode);
} catch (err) {
  process.stderr.write(`[test] ${(err as Error).message}\n`);
  await finish(1);
}
