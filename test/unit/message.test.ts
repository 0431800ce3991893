import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeMessage } from '../../src/core/message.ts';
import { envelopeHeaders, readEnvelope } from '../../src/core/envelope.ts';
import { backoffDelay } from '../../src/core/backoff.ts';
import { classifyError, errorSummary, PermanentError, RetryableError } from '../../src/core/errors.ts';
import { quoteIdent } from '../../src/core/identifier.ts';

const ok = { topic: 'orders', key: 'k1', type: 'order.created', payload: { a: 1 } };

test('a valid message encodes its payload once as JSON', () => {
  const encoded = encodeMessage(ok, 1024);
  assert.equal(encoded.contentType, 'application/json');
  assert.deepEqual(JSON.parse(encoded.bytes.toString()), { a: 1 });
  const bytes = encodeMessage({ ...ok, payload: Buffer.from([1, 2, 3]) }, 1024);
  assert.equal(bytes.contentType, 'application/octet-stream');
  assert.deepEqual([...bytes.bytes], [1, 2, 3]);
});

test('bad messages get typed errors', () => {
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  const cases: Array<[unknown, string]> = [
    [{ ...ok, payload: circular }, 'ZL_PAYLOAD_NOT_SERIALIZABLE'],
    [{ ...ok, payload: 10n }, 'ZL_PAYLOAD_NOT_SERIALIZABLE'],
    [{ ...ok, payload: { f: () => 1 } }, 'ZL_PAYLOAD_NOT_SERIALIZABLE'],
    [{ ...ok, payload: Number.NaN }, 'ZL_PAYLOAD_NOT_SERIALIZABLE'],
    [{ ...ok, payload: undefined }, 'ZL_PAYLOAD_NOT_SERIALIZABLE'],
    [{ ...ok, payload: 'x'.repeat(2000) }, 'ZL_PAYLOAD_TOO_LARGE'],
    [{ ...ok, topic: '' }, 'ZL_INVALID_TOPIC'],
    [{ ...ok, topic: 'a b' }, 'ZL_INVALID_TOPIC'],
    [{ ...ok, topic: undefined }, 'ZL_INVALID_TOPIC'],
    [{ ...ok, topic: '..' }, 'ZL_INVALID_TOPIC'],
    [{ ...ok, key: '' }, 'ZL_INVALID_KEY'],
    [{ ...ok, key: 42 }, 'ZL_INVALID_KEY'],
    [{ ...ok, key: 'k'.repeat(2000) }, 'ZL_INVALID_KEY'],
    [{ ...ok, type: '' }, 'ZL_INVALID_MESSAGE'],
    [{ ...ok, version: 0 }, 'ZL_INVALID_MESSAGE'],
    [{ ...ok, version: 1.5 }, 'ZL_INVALID_MESSAGE'],
    [{ ...ok, headers: { 'zl-id': 'x' } }, 'ZL_INVALID_MESSAGE'],
    [{ ...ok, headers: { a: 1 } }, 'ZL_INVALID_MESSAGE'],
    [null, 'ZL_INVALID_MESSAGE'],
  ];
  cases.forEach(([input, code], i) => {
    assert.throws(() => encodeMessage(input as never, 1024), { code }, `case ${i}`);
  });
});

test('envelope headers round-trip, and a broken envelope names the bad field', () => {
  const envelope = {
    id: '123',
    traceId: 't',
    type: 'x',
    version: 2,
    key: 'k',
    producerId: 'p',
    seq: 5,
    createdAt: new Date(0).toISOString(),
    headers: { app: 'v' },
  };
  const headers = envelopeHeaders(envelope, 'application/json');
  assert.deepEqual(readEnvelope('k', headers), envelope);
  assert.throws(() => readEnvelope('k', { ...headers, 'zl-id': '' }), /zl-id/);
  assert.throws(() => readEnvelope('k', { ...headers, 'zl-version': 'two' }), /zl-version/);
  assert.throws(() => readEnvelope('k', { ...headers, 'zl-created-at': 'yesterday' }), /zl-created-at/);
  const { 'zl-type': _t, ...noType } = headers;
  assert.throws(() => readEnvelope('k', noType), { code: 'ZL_INVALID_MESSAGE' });
});

test('backoff grows exponentially, is capped and jittered downwards only', () => {
  const opts = { baseMs: 100, maxMs: 1000, jitter: 0.5 };
  assert.equal(
    backoffDelay(1, opts, () => 0),
    100,
  );
  assert.equal(
    backoffDelay(3, opts, () => 0),
    400,
  );
  assert.equal(
    backoffDelay(10, opts, () => 0),
    1000,
  );
  assert.equal(
    backoffDelay(3, opts, () => 1),
    300,
  );
});

test('errors classify without throwing', () => {
  assert.equal(classifyError(new RetryableError('x')).retryable, true);
  assert.equal(classifyError(new PermanentError('x')).retryable, false);
  assert.equal(classifyError(new Error('boom')).retryable, true);
  assert.equal(classifyError('str').code, 'ZL_UNKNOWN');
  const weird = {
    toJSON() {
      throw new Error('no');
    },
  };
  assert.equal(classifyError(weird).code, 'ZL_UNKNOWN');
  assert.ok(errorSummary(new Error('x'.repeat(1000)), 50).length <= 50);
});

test('identifiers are validated and quoted', () => {
  assert.equal(quoteIdent('outbox_1'), '"outbox_1"');
  for (const bad of ['', 'Robert"); drop', '1abc', 'a-b', 'x'.repeat(64), 42]) {
    assert.throws(() => quoteIdent(bad), { code: 'ZL_INVALID_IDENTIFIER' });
  }
});
