import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../../..');

const SCHEMA = `
generator client {
  provider     = "prisma-client"
  output       = "./generated"
  moduleFormat = "esm"
}
datasource db {
  provider = "postgresql"
}
model Order {
  id String @id
  @@map("orders")
}
`;

/**
 * Generates a Prisma 7 client for the test's `orders` table into a temporary folder (its node_modules a link
 * to ours, so the client finds @prisma/client) and returns the folder; `remove` deletes it.
 *
 * Prisma's CLI fetches its schema engine from Prisma's download host on every start, `generate` included,
 * although `generate` never runs it; where that host cannot be reached the CLI stops there. We point
 * PRISMA_SCHEMA_ENGINE_BINARY at a stub that fails if it is ever run: `generate` then works offline.
 */
export function generatePrismaClient(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'zl-prisma-'));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  writeFileSync(path.join(dir, 'schema.prisma'), SCHEMA);
  const stub = path.join(dir, 'no-schema-engine.sh');
  writeFileSync(stub, '#!/bin/sh\necho "the schema engine is not available in this test" >&2\nexit 1\n');
  chmodSync(stub, 0o755);
  execFileSync(
    process.execPath,
    [path.join(ROOT, 'node_modules/prisma/build/index.js'), 'generate', '--schema', path.join(dir, 'schema.prisma')],
    {
      cwd: dir,
      env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: stub, PRISMA_HIDE_UPDATE_MESSAGE: '1', CHECKPOINT_DISABLE: '1' },
      stdio: 'pipe',
    },
  );
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
