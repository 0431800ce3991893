import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { defaultLogger } from '../../../src/adapters/log/default-logger.ts';
import { prettyLine } from '../../../src/adapters/log/json-logger.ts';

function capture(isTTY = false) {
  const chunks: string[] = [];
  return { chunks, isTTY, write: (line: string) => chunks.push(line) };
}

const saved = { ...process.env };
afterEach(() => {
  for (const name of ['ZEROLOSS_LOG_FORMAT', 'ZEROLOSS_LOG_LEVEL', 'ZEROLOSS_LOG_REDACT']) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
});

test('a terminal gets readable lines, a pipe JSON (pino when installed)', () => {
  const tty = capture(true);
  defaultLogger({ destination: tty, bindings: { component: 'relay' } }).warn(
    { messageId: 'm-1', topic: 'orders', attempt: 2 },
    'send failed',
  );
  assert.match(tty.chunks.join(''), /^\d\d:\d\d:\d\d\.\d{3} WARN {2}relay: send failed {2}messageId=m-1 topic=orders attempt=2\n$/);
  const pipe = capture(false);
  defaultLogger({ destination: pipe, bindings: { component: 'relay' } }).warn({ messageId: 'm-1' }, 'send failed');
  const line = JSON.parse(pipe.chunks.join(''));
  assert.equal(line.level, 40);
  assert.equal(line.component, 'relay');
  assert.equal(line.messageId, 'm-1');
});

test('ZEROLOSS_LOG_FORMAT overrides the terminal guess both ways', () => {
  process.env.ZEROLOSS_LOG_FORMAT = 'json';
  const tty = capture(true);
  defaultLogger({ destination: tty }).info({}, 'hello');
  assert.equal(JSON.parse(tty.chunks.join('')).msg, 'hello');
  process.env.ZEROLOSS_LOG_FORMAT = 'pretty';
  const pipe = capture(false);
  defaultLogger({ destination: pipe }).info({}, 'hello');
  assert.match(pipe.chunks.join(''), / INFO {2}hello\n$/);
});

test('a misspelt setting is a typed error, not a silent default', () => {
  process.env.ZEROLOSS_LOG_FORMAT = 'text';
  assert.throws(() => defaultLogger({ destination: capture() }), { code: 'ZL_INVALID_CONFIG', message: /ZEROLOSS_LOG_FORMAT/ });
  delete process.env.ZEROLOSS_LOG_FORMAT;
  process.env.ZEROLOSS_LOG_LEVEL = 'verbose';
  assert.throws(() => defaultLogger({ destination: capture() }), { code: 'ZL_INVALID_CONFIG', message: /ZEROLOSS_LOG_LEVEL/ });
});

test('redacted fields are blanked in JSON (pino) and readable lines, nested paths too; the caller’s object is untouched', () => {
  // Values with letters: a bare number ('4111') turned up inside a line's epoch-ms time once (1796641115452).
  const fields = { key: 'user-42', details: { card: 'card-4111', amount: 3 } };
  for (const format of ['json', 'pretty'] as const) {
    const out = capture();
    defaultLogger({ destination: out, format, redact: ['key', 'details.card'] }).info(fields, 'applied');
    const text = out.chunks.join('');
    assert.ok(!text.includes('user-42') && !text.includes('card-4111'), `${format}: ${text}`);
    assert.ok(text.includes('[redacted]') && text.includes('"amount":3'), `${format}: ${text}`);
  }
  process.env.ZEROLOSS_LOG_REDACT = 'key';
  const out = capture();
  defaultLogger({ destination: out }).info(fields, 'applied');
  assert.equal(JSON.parse(out.chunks.join('')).key, '[redacted]');
  assert.deepEqual(fields, { key: 'user-42', details: { card: 'card-4111', amount: 3 } });
});

test('a readable line carries an error as code: message, its stack below', () => {
  const error = Object.assign(new Error('broker down'), { code: 'ZL_BROKER_UNAVAILABLE' });
  const text = prettyLine({
    level: 50,
    time: Date.UTC(2026, 0, 1, 12, 0, 1, 123),
    pid: 1,
    component: 'relay',
    msg: 'round failed',
    err: { type: 'Error', message: error.message, stack: error.stack, code: error.code },
  });
  const [first, second] = text.split('\n');
  assert.equal(first, '12:00:01.123 ERROR relay: round failed  err="ZL_BROKER_UNAVAILABLE: broker down"');
  assert.match(second ?? '', /^ {4}at /);
});
