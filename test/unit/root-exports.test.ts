import assert from 'node:assert/strict';
import { test } from 'node:test';

test('the root entry point stays small: at most 40 runtime names (types do not count), the rest in subpaths', async () => {
  const root = await import('../../src/index.ts');
  const names = Object.keys(root).sort();
  assert.ok(names.length <= 40, `${names.length} runtime names: ${names.join(', ')}`);
  for (const feature of ['createOutbox', 'createRelay', 'createConsumer', 'ZerolossError']) assert.ok(names.includes(feature), feature);
});
