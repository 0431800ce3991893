import assert from 'node:assert/strict';
import { test } from 'node:test';
import { prepareBlock, readmeBlocks } from '../../scripts/readme-blocks.ts';

const README = [
  '# t',
  '<!-- readme-test: name=producer unique=orders,billing -->',
  '',
  '```ts',
  "const store = postgres('postgres://postgres@127.0.0.1:5432/test');",
  "kafka({ brokers: ['127.0.0.1:9092'] }); topic('orders'); group(\"billing\"); sql('insert into orders');",
  '```',
  '````md',
  '```ts',
  'inside another fence: not a block',
  '```',
  '````',
  '<!-- readme-test: skip a fragment of the block above -->',
  '```ts',
  'consumer.health();',
  '```',
  '```sh',
  'npm test',
  '```',
  '```ts',
  'plain();',
  '```',
].join('\n');

test('readmeBlocks: ts blocks with the directive above each, fences inside other fences ignored', () => {
  const blocks = readmeBlocks(README);
  assert.deepEqual(
    blocks.map((b) => [b.index, b.line, b.name, b.unique, b.skip]),
    [
      [1, 4, 'producer', ['orders', 'billing'], undefined],
      [2, 14, undefined, [], 'a fragment of the block above'],
      [3, 20, undefined, [], undefined],
    ],
  );
  assert.equal(blocks[2]?.code, 'plain();\n');
});

test('readmeBlocks: a skip without a reason and an unknown directive are errors', () => {
  assert.throws(() => readmeBlocks('<!-- readme-test: skip -->\n```ts\nx\n```\n'), /needs a reason/);
  assert.throws(() => readmeBlocks('<!-- readme-test: nmae=x -->\n```ts\nx\n```\n'), /unknown readme-test directive 'nmae=x'/);
  assert.throws(() => readmeBlocks('```ts\nx\n'), /never closed/);
});

test('prepareBlock: connection literals aimed at the run, unique names suffixed only as whole literals', () => {
  const [block] = readmeBlocks(README);
  assert.ok(block);
  const code = prepareBlock(block, { pgUrl: 'postgres://postgres@127.0.0.1:5432/zl_x', brokers: ['h1:1', 'h2:2'], suffix: 'ab12' });
  assert.equal(
    code,
    'const store = postgres("postgres://postgres@127.0.0.1:5432/zl_x");\n' +
      'kafka({ brokers: ["h1:1", "h2:2"] }); topic(\'orders-ab12\'); group("billing-ab12"); sql(\'insert into orders\');\n',
  );
});
