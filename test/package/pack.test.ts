/**
 * The package as a user gets it (issue #12, acceptance 2): `npm pack` of this repo (which builds dist/), unpacked
 * into projects outside the repo that hold only the drivers they chose, then:
 * - the README's producer and consumer quick starts run unmodified in a project with pg and @platformatic/kafka,
 *   the embedded quick start in a project with neither;
 * - `import 'zeroloss'` resolves no driver package; 'zeroloss/postgres' without pg throws ZL_DRIVER_MISSING;
 * - the published types compile with skipLibCheck off and without @types/pg.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { prepareBlock, type ReadmeBlock, readmeBlocks } from '../../scripts/readme-blocks.ts';
import { KAFKA_BROKERS } from '../helpers/kafka.ts';
import { describeRun, freshDatabase, runNode } from '../readme/run-script.ts';
import { makeProject, type Packed, packRepo, ROOT } from './pack-project.ts';

const DRIVERS = ['pg', '@platformatic/kafka', 'ioredis', 'amqplib', '@electric-sql/pglite'];
// A deadline for a run that never ends (a relay or consumer left running), not a speed target.
const RUN_TIMEOUT_MS = 180_000;

/** The child's environment without anything that would let it find packages outside its project. */
const childEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  delete env.NODE_PATH;
  delete env.NODE_OPTIONS;
  return env;
};

function readmeBlock(name: string): ReadmeBlock {
  const block = readmeBlocks(readFileSync(path.join(ROOT, 'README.md'), 'utf8')).find((b) => b.name === name);
  assert.ok(block, `README has no block named '${name}' (<!-- readme-test: name=${name} -->)`);
  return block;
}

describe('npm pack: the published package in a user project', { concurrency: true }, () => {
  let work: string;
  let packed: Packed;
  /** pg and @platformatic/kafka installed. */
  let withPg: string;
  /** Neither pg nor @platformatic/kafka: the embedded setup. */
  let embedded: string;
  const suffix = randomBytes(4).toString('hex');

  before(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'zl-pack-'));
    packed = await packRepo(work);
    withPg = path.join(work, 'with-pg');
    embedded = path.join(work, 'embedded');
    await makeProject(withPg, packed.tarball, ['pg', '@platformatic/kafka', '@types/node']);
    await makeProject(embedded, packed.tarball, []);
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('holds the built root and every entry point with its types', () => {
    const entries = readdirSync(path.join(ROOT, 'src/entry')).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
    assert.ok(entries.length > 0, 'src/entry has no entry points');
    const missing = ['index', ...entries.map((f) => `entry/${f.slice(0, -3)}`)]
      .flatMap((base) => [`dist/${base}.js`, `dist/${base}.d.ts`])
      .filter((file) => !packed.files.includes(file));
    assert.deepEqual(missing, [], 'files missing from the tarball');
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      exports: Record<string, string | Record<string, string>>;
    };
    const targets = Object.values(pkg.exports).flatMap((target) => (typeof target === 'string' ? [target] : Object.values(target)));
    assert.deepEqual(
      targets.filter((t) => !packed.files.includes(t.replace(/^\.\//, ''))),
      [],
      'package.json "exports" targets missing from the tarball',
    );
  });

  it("import 'zeroloss' resolves no driver package", async () => {
    const script = path.join(withPg, 'record-resolve.mjs');
    writeFileSync(
      script,
      `import { registerHooks } from 'node:module';
const resolved = [];
registerHooks({ resolve(specifier, context, next) { const result = next(specifier, context); resolved.push([specifier, result.url]); return result; } });
const zeroloss = await import('zeroloss');
process.stdout.write(JSON.stringify({ resolved, exports: Object.keys(zeroloss) }));
`,
    );
    const run = await runNode([script], { cwd: withPg, timeoutMs: RUN_TIMEOUT_MS, env: childEnv() });
    assert.equal(run.code, 0, describeRun("import 'zeroloss'", run));
    const { resolved, exports } = JSON.parse(run.stdout) as { resolved: Array<[string, string]>; exports: string[] };
    assert.ok(exports.includes('createOutbox'), `'zeroloss' exports no createOutbox: ${exports.join(', ')}`);
    const drivers = resolved.filter(([specifier, url]) =>
      DRIVERS.some((d) => specifier === d || specifier.startsWith(`${d}/`) || url.includes(`/node_modules/${d}/`)),
    );
    assert.deepEqual(drivers, [], "import 'zeroloss' resolved driver packages");
  });

  it("'zeroloss/postgres' without pg throws ZL_DRIVER_MISSING naming pg", async () => {
    const script = path.join(embedded, 'postgres-without-pg.mjs');
    writeFileSync(
      script,
      `import { ZerolossError } from 'zeroloss';
try {
  await import('zeroloss/postgres');
  process.stdout.write(JSON.stringify({ loaded: true }));
} catch (error) {
  process.stdout.write(JSON.stringify({ zeroloss: error instanceof ZerolossError, code: error?.code, message: String(error?.message) }));
}
`,
    );
    const run = await runNode([script], { cwd: embedded, timeoutMs: RUN_TIMEOUT_MS, env: childEnv() });
    assert.equal(run.code, 0, describeRun("import 'zeroloss/postgres' without pg", run));
    const outcome = JSON.parse(run.stdout) as { loaded?: boolean; zeroloss?: boolean; code?: string; message?: string };
    assert.equal(outcome.loaded, undefined, "'zeroloss/postgres' loaded in a project without pg");
    assert.equal(outcome.zeroloss, true, `not a ZerolossError: ${run.stdout}`);
    assert.equal(outcome.code, 'ZL_DRIVER_MISSING');
    assert.match(outcome.message ?? '', /'pg'|npm install pg\b/);
  });

  it("the README's producer and consumer quick starts run with pg and @platformatic/kafka", async () => {
    const database = await freshDatabase('zl_pack');
    try {
      for (const name of ['producer', 'consumer']) {
        const file = path.join(withPg, `${name}.mts`);
        writeFileSync(file, prepareBlock(readmeBlock(name), { pgUrl: database.url, brokers: KAFKA_BROKERS, suffix }));
        const run = await runNode([file], { cwd: withPg, timeoutMs: RUN_TIMEOUT_MS, env: childEnv() });
        assert.ok(run.code === 0 && !run.timedOut, describeRun(`README ${name} quick start`, run));
      }
    } finally {
      await database.drop();
    }
  });

  it("the README's embedded quick start runs with neither pg nor @platformatic/kafka", async () => {
    const dir = path.join(embedded, 'app');
    mkdirSync(dir);
    const file = path.join(embedded, 'embedded.mts');
    writeFileSync(file, prepareBlock(readmeBlock('embedded'), { pgUrl: '', brokers: KAFKA_BROKERS, suffix }));
    const run = await runNode([file], { cwd: dir, timeoutMs: RUN_TIMEOUT_MS, env: childEnv() });
    assert.ok(run.code === 0 && !run.timedOut, describeRun('README embedded quick start', run));
  });

  it('the published types compile: skipLibCheck off and no @types/pg; the README quick starts type-check', async () => {
    // Two programs: @platformatic/kafka's own .d.ts files fail skipLibCheck: false whatever imports them (an
    // untyped 'debug', RequestInit.dispatcher), so the strict one holds zeroloss and zeroloss/postgres only.
    const strict = typecheckDir(path.join(withPg, 'typecheck-strict'), false, {
      'uses-postgres.mts': `import { createOutbox, ZerolossError, type Store } from 'zeroloss';
import { postgres } from 'zeroloss/postgres';

const store: Store = postgres('postgres://postgres@127.0.0.1:5432/test');
export const outbox = createOutbox({ store, producerId: 'typecheck' });
export const isZeroloss = (error: unknown): boolean => error instanceof ZerolossError;
`,
    });
    const readme = typecheckDir(path.join(withPg, 'typecheck-readme'), true, {
      'readme-producer.mts': readmeBlock('producer').code,
      'readme-consumer.mts': readmeBlock('consumer').code,
    });
    const [strictResult, readmeResult] = await Promise.all([strict, readme]);
    assert.equal(strictResult, '', 'tsc (skipLibCheck: false, no @types/pg) on zeroloss and zeroloss/postgres failed');
    assert.equal(readmeResult, '', "tsc on the README's producer and consumer quick starts failed");
  });
});

/** Runs the repo's tsc over `files` in a fresh `dir` of the project; resolves to its errors ('' when it passes). */
async function typecheckDir(dir: string, skipLibCheck: boolean, files: Record<string, string>): Promise<string> {
  mkdirSync(dir);
  const compilerOptions = {
    target: 'es2023',
    module: 'nodenext',
    moduleResolution: 'nodenext',
    strict: true,
    skipLibCheck,
    noEmit: true,
    types: ['node'],
  };
  writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: ['*.mts'] }));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
  return promisify(execFile)(process.execPath, [tsc, '-p', dir], { cwd: dir, env: childEnv() }).then(
    () => '',
    (error: { stdout?: string; stderr?: string; message: string }) => `${error.stdout ?? ''}${error.stderr ?? ''}` || error.message,
  );
}
