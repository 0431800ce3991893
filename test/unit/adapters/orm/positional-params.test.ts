import assert from 'node:assert/strict';
import { test } from 'node:test';
import { outboxSql } from '../../../../src/adapters/postgres/outbox-sql.ts';
import { splitPositional, valuesInOrder } from '../../../../src/adapters/orm/positional-params.ts';

test('splitPositional cuts at $n, a repeated $n repeated, and keeps the text verbatim', () => {
  const sql = 'select $1, $2 where a = $1 and b = $10';
  const split = splitPositional(sql);
  assert.deepEqual(split.indexes, [0, 1, 0, 9]);
  assert.deepEqual(split.texts, ['select ', ', ', ' where a = ', ' and b = ', '']);
  assert.deepEqual(valuesInOrder(split, ['a', 'b', 3, 4, 5, 6, 7, 8, 9, 'j'], 't'), ['a', 'b', 'a', 'j']);
  assert.throws(() => valuesInOrder(split, ['a'], 't'), /uses \$2 but 1 parameter/);
});

test('splitPositional leaves $n inside strings, identifiers, comments, dollar quotes and words alone', () => {
  const cases: Array<[string, number[]]> = [
    ["select '$1', 'it''s $2', $3", [2]],
    ["select E'\\' $1', $2", [1]],
    ['select "$1" from t where x = $2', [1]],
    ['select 1 -- $1 ?\n, $2', [1]],
    ['select /* $1 /* nested $2 */ $3 */ $4', [3]],
    ['select $$ $1 $$, $body$ $2 $body$, $3', [2]],
    ['select a$1, $2', [1]],
    ['select x::jsonb ? $1', [0]],
  ];
  for (const [sql, indexes] of cases) {
    const split = splitPositional(sql);
    assert.deepEqual(split.indexes, indexes, sql);
    const rebuilt = split.texts.map((text, i) => (i === 0 ? text : `$${(split.indexes[i - 1] ?? 0) + 1}${text}`)).join('');
    assert.equal(rebuilt, sql, 'the texts are verbatim');
  }
});

test("zeroloss's own enqueue statement: every placeholder found, none inside its quoted strings or comment", () => {
  const { insert, unbumpSeq, writeTables } = outboxSql('"s"', { notifyChannel: 's_outbox', holdKeyOnParked: true });
  const split = splitPositional(insert);
  assert.deepEqual(
    [...new Set(split.indexes)].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7, 8],
  );
  assert.equal(split.indexes.length, (insert.match(/\$[0-9]+/g) ?? []).length);
  assert.equal(insert.includes('?'), false, 'no ? for Knex to take for a binding');
  assert.deepEqual(splitPositional(unbumpSeq).indexes, [0, 1]);
  assert.deepEqual(splitPositional(writeTables).indexes, []);
});
