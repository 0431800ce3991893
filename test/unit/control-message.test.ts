import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CONTROL_HEADER, CONTROL_TOPIC, decodeControl, encodeControl } from '../../src/core/control-message.ts';
import { ZerolossError } from '../../src/core/errors.ts';
import { ControlSender } from '../../src/operations/control-channel.ts';

const at = '2026-12-05T08:00:00.000Z';

test('a control message round-trips, keyed by its producer (receipts: by group)', () => {
  const request = { kind: 'resend-request', group: 'g', topic: 't', producerId: 'p1', key: 'k', fromSeq: 3, toSeq: 5, at } as const;
  const record = encodeControl(request);
  assert.equal(record.topic, CONTROL_TOPIC);
  assert.equal(record.key, 'p1');
  assert.equal(record.headers[CONTROL_HEADER], 'resend-request');
  assert.deepEqual(decodeControl(record), request);
  const r = encodeControl({ kind: 'receipts', group: 'points', at, applied: [{ messageId: 'm1', producerId: 'p1', topic: 't' }] });
  assert.equal(r.key, 'points');
});

test('bad control records are typed, non-retryable errors', () => {
  const bad = [
    Buffer.from([0xff, 0xfe]),
    Buffer.from('not json'),
    Buffer.from('{"kind":"launch"}'),
    Buffer.from(JSON.stringify({ kind: 'resend-request', group: 'g', topic: 't', producerId: 'p', key: 'k', fromSeq: 5, toSeq: 3, at })),
    Buffer.from(JSON.stringify({ kind: 'resend-request', group: 'g', topic: 't', producerId: 'p', key: 'k', fromSeq: 0, toSeq: 3, at })),
    Buffer.from(JSON.stringify({ kind: 'receipts', group: 'g', at, applied: [], extra: 1 })),
  ];
  for (const value of bad) {
    assert.throws(
      () => decodeControl({ value }),
      (e: unknown) => e instanceof ZerolossError && e.code === 'ZL_INVALID_MESSAGE' && !e.retryable,
    );
  }
  assert.throws(() => encodeControl({ kind: 'producer-marks', producerId: '', at, marks: [] }));
});

test('ControlSender: a failing broker never hangs close(); what is queued is counted as dropped', async () => {
  let calls = 0;
  const publisher = {
    publish: async (records: unknown[]) => {
      calls++;
      return records.map(() => ({ ok: false as const, attempted: true, error: new ZerolossError('ZL_SEND_FAILED', 'down') }));
    },
    close: async () => {},
  };
  const errors: Error[] = [];
  const sender = new ControlSender({ publisher, retryDelayMs: 10, onError: (e) => errors.push(e) });
  sender.send({ kind: 'receipts', group: 'g', at, applied: [{ messageId: 'm1', producerId: 'p', topic: 't' }] });
  const started = Date.now();
  await sender.close(200);
  assert.ok(Date.now() - started < 2_000, 'close returned after its timeout');
  assert.ok(calls >= 1 && errors.length >= 1);
  assert.equal(sender.dropped, 1);
});

test('ControlSender: a partly refused batch sends only the refused messages again', async () => {
  const seen: string[] = [];
  let refused = false;
  const publisher = {
    publish: async (records: Array<{ key: string }>) => {
      seen.push(...records.map((r) => r.key));
      return records.map((r) => {
        if (r.key !== 'b' || refused) return { ok: true as const };
        refused = true;
        return { ok: false as const, attempted: true, error: new ZerolossError('ZL_SEND_FAILED', 'no') };
      });
    },
    close: async () => {},
  };
  const sender = new ControlSender({ publisher, retryDelayMs: 1 });
  for (const p of ['a', 'b', 'c']) sender.send({ kind: 'producer-marks', producerId: p, at, marks: [] });
  await sender.flush();
  assert.deepEqual(seen.sort(), ['a', 'b', 'b', 'c']);
  await sender.close();
});

test('zeroloss/operations exports the control channel that docs/operations.md shows in code', async () => {
  const ops = await import('../../src/entry/operations.ts');
  for (const name of ['startProducerControl', 'listenControl', 'ControlSender', 'CONTROL_TOPIC', 'storeReceipts', 'confirmations']) {
    assert.ok(name in ops, `${name} exported`);
  }
});
