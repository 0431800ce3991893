import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PostgresOutboxStore } from '../../../src/adapters/postgres/postgres-outbox-store.ts';
import { TableLogAdmin } from '../../../src/adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../../../src/adapters/table-log/table-log-publisher.ts';
import type { ReconcileReport } from '../../../src/operations/reconcile.ts';
import { Relay } from '../../../src/outbox/relay.ts';
import { freePort } from '../../helpers/consumer-workload.ts';
import { PG_URL, freshSchema, inTransaction } from '../../helpers/pg.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

/** O8's emergency plan in the shipped daemon: `serve --on-escalate <command>`. */
describe('serve --on-escalate', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  const conn = () => ['--pg', PG_URL, '--schema', env.schema, '--table-log'];
  before(async () => {
    env = await freshSchema('zlescs');
  });
  after(async () => {
    await env.cleanup();
  });

  /** Three messages on topic 'esc', relayed; two of them deleted from the log. */
  async function topicWithLoss(): Promise<void> {
    await new TableLogAdmin(env.db, { schema: env.schema }).createTopic('esc', 1);
    const outbox = testOutbox({ schema: env.schema });
    for (let i = 0; i < 3; i++)
      await inTransaction(env.pool, (tx) => outbox.enqueue(tx, { topic: 'esc', key: `k${i}`, type: 'credit', payload: { n: i } }));
    const publisher = new TableLogPublisher(env.db, { schema: env.schema });
    assert.equal(await new Relay({ sources: new PostgresOutboxStore(env.db, { schema: env.schema }), publisher }).drain(), 3);
    await env.pool.query(`delete from "${env.schema}".log_record where topic = 'esc' and log_offset < 2`);
  }

  test('serve --on-escalate: the command gets the report on stdin; its failure is logged and serve goes on', async () => {
    await topicWithLoss();
    const dir = mkdtempSync(join(tmpdir(), 'zl-esc-'));
    const file = join(dir, 'report.json');
    const http = await freePort();
    const child = spawn(
      process.execPath,
      [
        MAIN,
        'serve',
        ...conn(),
        '--http-host',
        '127.0.0.1',
        '--http-port',
        String(http),
        '--reconcile-every',
        '200ms',
        '--reconcile-settle',
        '0s',
        '--nightly-hour',
        'off',
        '--max-auto-repair',
        '1',
        '--on-escalate',
        `cat > '${file}'; echo pager down >&2; exit 7`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ZEROLOSS_LOG_FORMAT: 'json' } },
    );
    let output = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    try {
      await waitFor(() => /escalation hook failed/.test(output), {
        what: `a failed hook (so far: ${output.slice(-2_000)})`,
        timeoutMs: 30_000,
      });
      assert.match(output, /ESCALATED: 2 missing messages/);
      assert.match(output, /exited with 7: pager down/);
      const report = JSON.parse(readFileSync(file, 'utf8')) as ReconcileReport;
      assert.deepEqual(report.held, { count: 2, limit: 1 });
      assert.deepEqual(report.topics, ['esc']);
      const series = async (name: string) => {
        const text = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text();
        return Number(new RegExp(`^${name}\\{kind="recent"(?:,verdict="[a-z-]+")?\\} (\\d+)`, 'm').exec(text)?.[1] ?? Number.NaN);
      };
      assert.equal(await series('zeroloss_reconcile_escalation_hook_failures_total'), 1);
      assert.equal(await series('zeroloss_reconcile_escalations_total'), 1);
      // serve goes on: later runs happen (and do not escalate the held loss again).
      const runs = await series('zeroloss_reconcile_runs_total');
      await waitFor(async () => (await series('zeroloss_reconcile_runs_total')) > runs, { what: 'a later run' });
      assert.equal(await series('zeroloss_reconcile_escalations_total'), 1);
      assert.equal(child.exitCode, null, 'serve still running');
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(child.exitCode, 0, output.slice(-2_000));
  });
});
