import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { escalationCommand } from '../../../src/cli/escalation-command.ts';
import type { ReconcileReport } from '../../../src/operations/reconcile.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const report = { runId: '42', kind: 'recent', held: { count: 1500, limit: 1000 } } as unknown as ReconcileReport;

/** `serve --on-escalate`: the command gets the report, and every way it can fail is a rejection, bounded in time. */
describe('escalationCommand', () => {
  test('the command reads the report on stdin, with ZEROLOSS_RUN_ID set', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zl-hook-'));
    try {
      await escalationCommand(`cat > '${dir}/r.json'; echo "$ZEROLOSS_RUN_ID" > '${dir}/id'`, 5_000)(report);
      assert.deepEqual(JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8')).held, { count: 1500, limit: 1000 });
      assert.equal(readFileSync(join(dir, 'id'), 'utf8').trim(), '42');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a non-zero exit rejects with the end of its stderr; a command that ignores stdin is fine', async () => {
    await assert.rejects(escalationCommand('echo no pager >&2; exit 4', 5_000)(report), /exited with 4: no pager/);
    await escalationCommand('true', 5_000)(report);
  });

  test('a command still running at the timeout is killed, with what it started, and rejects', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zl-hook-'));
    try {
      const started = Date.now();
      await assert.rejects(escalationCommand(`sleep 30 & echo $! > '${dir}/pid'; wait`, 300)(report), /killed after 300 ms/);
      assert.ok(Date.now() - started < 5_000);
      const pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
      await waitFor(
        () => {
          try {
            process.kill(pid, 0);
            return false;
          } catch {
            return true;
          }
        },
        { what: 'the sleep the command started to be gone', timeoutMs: 5_000 },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
