/**
 * Every ```ts block of README.md runs as a user would write it: imports from 'zeroloss' and 'zeroloss/<x>'
 * (resolved to the sources by zeroloss-hooks.ts), on the real Postgres and the Kafka of this test run. The
 * blocks run in README order against one fresh database, so the consumer quick start reads what the producer
 * quick start sent. A block must end by itself; one that is not meant to run says so in a
 * `<!-- readme-test: skip <reason> -->` comment (see scripts/readme-blocks.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { prepareBlock, readmeBlocks } from '../../scripts/readme-blocks.ts';
import { KAFKA_BROKERS } from '../helpers/kafka.ts';
import { describeRun, freshDatabase, runNode } from './run-script.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const HOOKS = path.join(import.meta.dirname, 'zeroloss-hooks.ts');
// A deadline for a block that never ends, not a speed target: a loaded 2-core machine took 55 s for PGlite to start and migrate.
const BLOCK_TIMEOUT_MS = 180_000;

test('README: every ts block runs as written, or says why not', async (t) => {
  const blocks = readmeBlocks(readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
  assert.ok(
    blocks.some((b) => !b.skip),
    'the README has no runnable ts block',
  );
  for (const name of ['producer', 'consumer', 'embedded']) {
    assert.ok(
      blocks.some((b) => b.name === name && !b.skip),
      `no runnable README block named '${name}' (the pack test runs it)`,
    );
  }

  const database = await freshDatabase('zl_readme');
  const dir = mkdtempSync(path.join(tmpdir(), 'zl-readme-'));
  const suffix = randomBytes(4).toString('hex');
  try {
    for (const block of blocks) {
      const title = `block #${block.index} (README line ${block.line}${block.name ? `, ${block.name}` : ''})`;
      await t.test(title, { skip: block.skip }, async () => {
        const file = path.join(dir, `block-${block.index}.mts`);
        writeFileSync(file, prepareBlock(block, { pgUrl: database.url, brokers: KAFKA_BROKERS, suffix }));
        const run = await runNode(['--import', HOOKS, file], { cwd: dir, timeoutMs: BLOCK_TIMEOUT_MS });
        assert.ok(run.code === 0 && !run.timedOut, describeRun(title, run));
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await database.drop();
  }
});
