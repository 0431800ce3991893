import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from '../../../src/cli/args.ts';
import { kafkaSecurityOptions } from '../../../src/cli/kafka-connection-options.ts';

test('--config is --config-file where the command has no --config of its own', () => {
  const options = { ...kafkaSecurityOptions, once: { type: 'boolean' } } as const;
  assert.equal(parse(['--config', 'a.json', '--once'], options).values['config-file'], 'a.json');
  assert.equal(parse(['--config=b.json'], options).values['config-file'], 'b.json');
  assert.equal(parse(['--config-file', 'c.json'], options).values['config-file'], 'c.json');
});

test("a command's own --config (topics: topic configs) keeps its meaning", () => {
  const options = { ...kafkaSecurityOptions, config: { type: 'string', multiple: true } } as const;
  const { values } = parse(['--config', 'retention.ms=1000'], options);
  assert.deepEqual(values.config, ['retention.ms=1000']);
  assert.equal(values['config-file'], undefined);
});

test('an unknown flag is still ZL_INVALID_CONFIG', () => {
  assert.throws(() => parse(['--configg', 'x'], { ...kafkaSecurityOptions }), { code: 'ZL_INVALID_CONFIG' });
});
