import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { prepareBlock, readmeBlocks } from '../../../scripts/readme-blocks.ts';
import { describeRun, freshDatabase, runNode } from '../../readme/run-script.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');

// The guards' snippet in docs/consumer.md runs as written, as a user would (imports from 'zeroloss/guards').
test('docs/consumer.md: the out-of-order guards snippet runs and ends with the order paid', async () => {
  const block = readmeBlocks(readFileSync(path.join(ROOT, 'docs/consumer.md'), 'utf8')).find((b) => b.name === 'guards');
  assert.ok(block && !block.skip, 'a runnable block named guards');
  const database = await freshDatabase('zl_guards_doc');
  const dir = mkdtempSync(path.join(tmpdir(), 'zl-guards-doc-'));
  try {
    const file = path.join(dir, 'guards.mts');
    writeFileSync(file, prepareBlock(block, { pgUrl: database.url, brokers: [], suffix: 'x' }));
    const run = await runNode(['--import', path.join(ROOT, 'test/readme/zeroloss-hooks.ts'), file], { cwd: dir, timeoutMs: 60_000 });
    assert.ok(run.code === 0 && !run.timedOut, describeRun('the guards snippet', run));
    assert.match(run.stdout, /status: 'paid'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await database.drop();
  }
});
