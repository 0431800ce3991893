import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newDelivery, type Routed, setDecoded, setRouted } from '../../../src/consumer/delivery.ts';
import { DEFERRED_HEADER, deferStage } from '../../../src/consumer/middleware/defer.ts';
import { LaneTicket } from '../../../src/consumer/lane-ticket.ts';
import { ZerolossError } from '../../../src/core/errors.ts';
import type { OutgoingRecord } from '../../../src/core/envelope.ts';
import type { Publisher } from '../../../src/ports/transport.ts';

/** A routed delivery of `type` read from `topic`. */
function delivery(type: string, topic = 'shop', headers: Record<string, string> = {}) {
  const lane = {
    sleep: async () => true,
    wait: async () => true,
    exclusive: <T>(fn: () => Promise<T>) => fn(),
    ticket: new LaneTicket(undefined),
  };
  const d = newDelivery(
    { topic, partition: 1, offset: 7n, key: 'k', value: Buffer.from('{}'), headers: { 'zl-id': 'm1', ...headers } },
    { groupId: 'g', signal: new AbortController().signal, lane, epoch: 1 },
  );
  setDecoded(d, { envelope: { id: 'm1', type } as never, payload: {} });
  setRouted(d, { message: { type } } as unknown as Routed);
  return d;
}

function publisher(answer: 'ok' | 'refuse' | 'throw'): Publisher & { sent: OutgoingRecord[] } {
  const sent: OutgoingRecord[] = [];
  return {
    sent,
    async publish(records: OutgoingRecord[]) {
      if (answer === 'throw') throw new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', 'broker down', { retryable: true });
      sent.push(...records);
      return records.map(() =>
        answer === 'ok'
          ? { ok: true as const, partition: 0, offset: 0n }
          : { ok: false as const, error: new ZerolossError('ZL_SEND_REJECTED', 'refused') },
      );
    },
  } as unknown as Publisher & { sent: OutgoingRecord[] };
}

const on = { degraded: (name: string) => name === 'peak' };
const rules = { switches: on, types: { 'points.bonus': { switch: 'peak', topic: 'shop.standby' } } };

test('a listed type whose switch is on goes to its standby topic, unapplied, with where it came from', async () => {
  const p = publisher('ok');
  const d = delivery('points.bonus');
  let applied = 0;
  await deferStage(rules, p, () => {})(d, async () => void applied++);
  assert.equal(applied, 0);
  assert.deepEqual(d.outcome, { kind: 'deferred', topic: 'shop.standby' });
  assert.equal(p.sent[0]?.topic, 'shop.standby');
  assert.equal(p.sent[0]?.headers[DEFERRED_HEADER], 'shop/1/7');
  assert.equal(p.sent[0]?.headers['zl-id'], 'm1', 'the copy keeps its message id, so the inbox applies it once');
});

test('never dropped: a copy the broker refuses or cannot take, and the record is applied now', async () => {
  for (const answer of ['refuse', 'throw'] as const) {
    const reported: Error[] = [];
    const d = delivery('points.bonus');
    let applied = 0;
    await deferStage(rules, publisher(answer), (e) => reported.push(e))(d, async () => void applied++);
    assert.equal(applied, 1, answer);
    assert.equal(d.outcome, undefined);
    assert.equal(reported.length, 1);
  }
});

test('applied as usual: other types, a switch that is off, a deferred copy being drained, a retry copy', async () => {
  const cases = [
    delivery('order.paid'),
    delivery('points.bonus', 'shop', { [DEFERRED_HEADER]: 'shop/0/1' }),
    delivery('points.bonus', 'shop.standby'),
    delivery('points.bonus', 'shop.retry.1'),
  ];
  for (const d of cases) {
    let applied = 0;
    const p = publisher('ok');
    await deferStage(rules, p, () => {})(d, async () => void applied++);
    assert.equal(applied, 1, `${d.record.topic} ${d.routed.message.type}`);
    assert.equal(p.sent.length, 0);
  }
  let applied = 0;
  await deferStage({ ...rules, switches: { degraded: () => false } }, publisher('ok'), () => {})(
    delivery('points.bonus'),
    async () => void applied++,
  );
  assert.equal(applied, 1, 'switch off');
});
