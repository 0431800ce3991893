/**
 * docs/upgrading.md stays true: it names every one of the 137 names the root exported at a97ce07, and each row
 * that points at an entry point ("`zeroloss/kafka`: `KafkaPublisherConfig`", "`zeroloss` (unchanged)") points
 * at one that exports the name.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** Names in `export { … }` / `export type { … }` clauses (what the entry files consist of). */
function exportedNames(source: string): Set<string> {
  const names = new Set<string>();
  for (const clause of source.matchAll(/export\s+(?:type\s+)?\{([^}]*)\}/g)) {
    for (const item of (clause[1] ?? '').split(',')) {
      const name = item
        .trim()
        .replace(/^type\s+/, '')
        .split(/\s+as\s+/)
        .pop()
        ?.trim();
      if (name) names.add(name);
    }
  }
  return names;
}

function entryExports(): Map<string, Set<string>> {
  const entries = new Map([['zeroloss', exportedNames(readFileSync(path.join(ROOT, 'src/index.ts'), 'utf8'))]]);
  for (const file of readdirSync(path.join(ROOT, 'src/entry')).filter((f) => f.endsWith('.ts'))) {
    entries.set(`zeroloss/${file.slice(0, -3)}`, exportedNames(readFileSync(path.join(ROOT, 'src/entry', file), 'utf8')));
  }
  return entries;
}

function upgradingRows(): Map<string, string> {
  const doc = readFileSync(path.join(ROOT, 'docs/upgrading.md'), 'utf8');
  const rows = new Map<string, string>();
  for (const match of doc.matchAll(/^\| `([A-Za-z_$][\w$]*)` \| (?:value|type) \| (.*) \|$/gm)) rows.set(match[1] ?? '', match[2] ?? '');
  return rows;
}

test('docs/upgrading.md maps every name the root exported at a97ce07', (t) => {
  let old: string;
  try {
    old = execFileSync('git', ['show', 'a97ce07:src/index.ts'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    t.skip('no git history here (a97ce07)');
    return;
  }
  const names = exportedNames(old);
  assert.equal(names.size, 137);
  const rows = upgradingRows();
  assert.deepEqual(
    [...names].filter((n) => !rows.has(n)),
    [],
    'old names without a row in docs/upgrading.md',
  );
});

test('docs/upgrading.md points each name at an entry point that exports it', () => {
  const entries = entryExports();
  const wrong: string[] = [];
  let checked = 0;
  for (const [name, now] of upgradingRows()) {
    const same = /^`(zeroloss(?:\/[a-z-]+)?)` \(unchanged/.exec(now);
    const named = /^`(zeroloss(?:\/[a-z-]+)?)`: `([A-Za-z_$][\w$]*)`/.exec(now);
    const [entry, exported] = same ? [same[1], name] : named ? [named[1], named[2]] : [undefined, undefined];
    if (entry === undefined || exported === undefined) continue;
    checked++;
    if (!entries.get(entry)?.has(exported)) wrong.push(`${name}: ${entry} does not export ${exported}`);
  }
  assert.deepEqual(wrong, []);
  assert.ok(checked >= 90, `only ${checked} rows name an entry point: has the row format changed?`);
});
