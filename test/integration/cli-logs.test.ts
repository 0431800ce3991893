import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createOutbox } from '../../src/index.ts';
import { postgres } from '../../src/entry/postgres.ts';
import { BROKERS, createTopics, uniqueId } from '../helpers/consumer-fixtures.ts';
import { freePort } from '../helpers/consumer-workload.ts';
import { PG_URL, uniqueName } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** A CLI child process whose stderr is kept, and split into lines as it arrives. */
class Cli {
  readonly child: ChildProcess;
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString();
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  get lines(): string[] {
    return this.stderr.split('\n').filter((l) => l.trim() !== '');
  }

  /** Every line so far as JSON; a line that is not one fails the test, naming it. */
  json(): Array<Record<string, unknown>> {
    return this.lines.map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new assert.AssertionError({ message: `not a JSON log line: ${line}` });
      }
    });
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}

/**
 * Issue 17, structured logs from the CLI's long-running processes: `zeroloss relay` and `zeroloss serve`
 * write JSON lines (stderr is a pipe here, as under a collector) with level, time, pid and component;
 * `ZEROLOSS_LOG_FORMAT=pretty` gives a readable line; a misspelt level is refused at start.
 */
describe('CLI processes log structured lines', () => {
  const schema = uniqueName('zlclilog');
  const topic = uniqueId('zl-clilog');
  const store = postgres(PG_URL, { schema });
  const running: Cli[] = [];
  const cli = (args: string[], env?: Record<string, string>) => {
    const c = new Cli(args, env);
    running.push(c);
    return c;
  };
  const relayArgs = ['relay', '--pg', PG_URL, '--schema', schema, '--kafka', BROKERS.join(','), '--poll-interval-ms', '20'];

  before(async () => {
    await store.migrate();
    await createTopics([topic], 1);
  });
  after(async () => {
    for (const c of running) await c.stop();
    await store.transaction((tx) => tx.query(`drop schema if exists "${schema}" cascade`)).catch(() => {});
    await store.close();
  });

  test('relay: JSON lines for start, each round (--verbose: debug) and stop, all with component relay', async () => {
    const relay = cli([...relayArgs, '--verbose']);
    await waitFor(() => relay.lines.some((l) => l.includes('running on schema')), { what: 'the relay running', timeoutMs: 30_000 });
    const outbox = createOutbox({ store, producerId: 'cli-logs' });
    const sent = await store.transaction((tx) => outbox.enqueue(tx, { topic, key: 'k-1', type: 'noted', payload: { n: 1 } }));
    await waitFor(() => relay.json().find((l) => l.msg === 'relay round' && Number(l.sent) >= 1), {
      what: `a round line for ${sent.id}`,
      timeoutMs: 30_000,
    });
    assert.equal(await relay.stop(), 0, relay.stderr);
    const lines = relay.json();
    for (const line of lines) {
      assert.equal(line.component, 'relay', JSON.stringify(line));
      assert.equal(typeof line.level, 'number');
      assert.equal(typeof line.time, 'number');
      assert.equal(line.pid, relay.child.pid);
      assert.equal(typeof line.msg, 'string');
    }
    const running = lines.find((l) => String(l.msg).includes('running on schema'));
    assert.equal(running?.level, 30);
    assert.equal(running?.schema, schema);
    const round = lines.find((l) => l.msg === 'relay round');
    assert.equal(round?.level, 20);
    assert.ok(Number(round?.claimed) >= 1 && typeof round?.claimMs === 'number');
    assert.ok(lines.some((l) => l.msg === 'relay started'));
    assert.ok(lines.some((l) => l.msg === 'relay stopped'));
  });

  test('serve: JSON lines with component serve', async () => {
    const port = await freePort();
    const serve = cli(
      ['serve', '--pg', PG_URL, '--schema', schema, '--kafka', BROKERS.join(','), '--http-host', '127.0.0.1', '--http-port', String(port)],
      { ZEROLOSS_LOG_FORMAT: '' },
    );
    const line = await waitFor(() => serve.json().find((l) => String(l.msg).includes('probes and metrics on')), {
      what: 'serve running',
      timeoutMs: 30_000,
    });
    assert.equal(line.component, 'serve');
    assert.equal(line.level, 30);
    assert.equal(line.http, `127.0.0.1:${port}`);
    await serve.stop();
    for (const l of serve.json()) assert.equal(l.component, 'serve');
  });

  test('ZEROLOSS_LOG_FORMAT=pretty: one readable line per event', async () => {
    const relay = cli(relayArgs, { ZEROLOSS_LOG_FORMAT: 'pretty' });
    await waitFor(() => relay.lines.some((l) => l.includes('running on schema')), { what: 'the relay running', timeoutMs: 30_000 });
    await relay.stop();
    const line = relay.lines.find((l) => l.includes('running on schema')) ?? '';
    assert.match(line, /^\d\d:\d\d:\d\d\.\d{3} INFO {2}relay: relay \S+: running on schema \S+ {2}schema=\S+ mode=poll$/);
    assert.ok(!relay.lines.some((l) => l.startsWith('{')), 'no JSON line');
  });

  test('a misspelt ZEROLOSS_LOG_LEVEL is refused at start with ZL_INVALID_CONFIG (exit 2)', async () => {
    const relay = cli(relayArgs, { ZEROLOSS_LOG_LEVEL: 'verbose' });
    assert.equal(await relay.exited, 2);
    assert.match(relay.stderr, /ZL_INVALID_CONFIG: ZEROLOSS_LOG_LEVEL must be one of debug, info, warn, error, silent, not "verbose"/);
  });
});
