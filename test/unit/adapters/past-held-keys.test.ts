import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PastHeldKeys } from '../../../src/adapters/postgres/past-held-keys.ts';

test('the claim past held keys runs after an empty claim, and rests a second after one that took nothing', async () => {
  let now = 0;
  const gate = new PastHeldKeys(() => now);
  let seconds = 0;
  const second = (rows: string[]) => async () => {
    seconds++;
    return rows;
  };
  const took = (rows: string[]) => rows.length > 0;
  assert.deepEqual(await gate.claim(['a'], took, second(['x'])), ['a'], 'a claim that took rows settles it');
  assert.equal(seconds, 0);
  assert.deepEqual(await gate.claim([], took, second(['x']), () => false), [], 'nothing due: nothing to look past');
  assert.equal(seconds, 0);
  assert.deepEqual(await gate.claim([], took, second(['x'])), ['x'], 'an empty claim: the second form runs');
  assert.deepEqual(await gate.claim([], took, second(['y'])), ['y'], 'and again while it takes rows (a held key)');
  assert.deepEqual(await gate.claim([], took, second([])), []);
  assert.equal(seconds, 3);
  now = 999;
  assert.deepEqual(await gate.claim([], took, second(['z'])), [], 'within a second of one that took nothing: not run');
  assert.equal(seconds, 3);
  now = 1_000;
  assert.deepEqual(await gate.claim([], took, second(['z'])), ['z'], 'after it');
  assert.equal(seconds, 4);
});
