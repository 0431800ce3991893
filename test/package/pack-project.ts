/**
 * A user's project made from `npm pack` of this repo, for the pack test: the tarball unpacked as
 * node_modules/zeroloss, and each package it depends on (plus the drivers the project chooses) linked from
 * the repo's node_modules. Linking instead of `npm install` keeps the test offline and fast (a registry
 * install took 16 s for pg and @platformatic/kafka alone) and still checks what matters: only the packages
 * the tarball's package.json names, and the drivers the user installed, are there to be found.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const ROOT = path.resolve(import.meta.dirname, '../..');

export interface Packed {
  tarball: string;
  /** Paths inside the tarball, without the leading 'package/'. */
  files: string[];
}

/** `npm pack` (which runs `prepare`, the dist build) into `dest`. */
export async function packRepo(dest: string): Promise<Packed> {
  const { stdout } = await run('npm', ['pack', '--pack-destination', dest, '--json', '--silent'], {
    cwd: ROOT,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false' },
  });
  // `prepare` may print before the JSON; the report is the last top-level array.
  const report = JSON.parse(stdout.slice(stdout.lastIndexOf('\n[') + 1)) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const entry = report[0];
  if (!entry) throw new Error(`npm pack printed no report: ${stdout}`);
  return { tarball: path.join(dest, entry.filename), files: entry.files.map((f) => f.path) };
}

interface Manifest {
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

/**
 * An ESM project in `dir` with zeroloss from `tarball` and, besides zeroloss's own dependencies, only `extra`
 * (names of packages in the repo's node_modules). Returns the packages it links.
 */
export async function makeProject(dir: string, tarball: string, extra: string[]): Promise<string[]> {
  const target = path.join(dir, 'node_modules', 'zeroloss');
  mkdirSync(target, { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', target, '--strip-components=1']);
  const manifest = JSON.parse(readFileSync(path.join(target, 'package.json'), 'utf8')) as Manifest;
  const required = Object.keys(manifest.peerDependencies ?? {}).filter((name) => !manifest.peerDependenciesMeta?.[name]?.optional);
  const linked = [...new Set([...Object.keys(manifest.dependencies ?? {}), ...required, ...extra])];
  for (const name of linked) {
    const link = path.join(dir, 'node_modules', name);
    mkdirSync(path.dirname(link), { recursive: true });
    symlinkSync(path.join(ROOT, 'node_modules', name), link, 'dir');
  }
  const dependencies = Object.fromEntries(['zeroloss', ...extra].map((name) => [name, '*']));
  writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: path.basename(dir), private: true, type: 'module', dependencies }, null, 2),
  );
  return linked;
}
