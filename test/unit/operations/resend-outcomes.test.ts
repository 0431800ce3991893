import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resend } from '../../../src/operations/resend.ts';
import type { ResendRow, ResendStore } from '../../../src/ports/operations-store.ts';
import type { Publisher } from '../../../src/ports/transport.ts';

/** What resend says about each selected row must be what happened to it: the operator acts on it. */
function row(seq: number, state: number): ResendRow {
  return { seqId: String(seq), messageId: `m${seq}`, topic: 't', key: 'k', headers: {}, payload: Buffer.from('{}'), state } as ResendRow;
}

test('a parked row is skipped as parked (nothing sends it until released), and a row gone before its record is reported', async () => {
  const rows = [row(1, 1), row(2, 3), row(3, 0), row(4, 1)];
  const store: ResendStore = {
    resendRows: async (_selector, after) => rows.filter((r) => Number(r.seqId) > Number(after)),
    // m4's row was deleted by retention (or discarded) between its read and its record.
    recordResent: async (sent) => sent.map((s) => s.messageId).filter((id) => id !== 'm4'),
  };
  const publisher: Publisher = {
    publish: async (records) => records.map((_, i) => ({ ok: true, partition: 0, offset: BigInt(i) })),
    close: async () => {},
  };
  const result = await resend({ store, publisher }, { ids: ['m1', 'm2', 'm3', 'm4'] }, { actor: 'test', reason: 'test' });
  assert.deepEqual(result.resent, ['m1']);
  assert.deepEqual(result.skipped, [
    { messageId: 'm2', reason: 'parked: nothing sends it until a person releases it (zeroloss parked release)' },
    { messageId: 'm3', reason: 'not sent yet: the relay sends it' },
  ]);
  assert.deepEqual(result.failed, [
    { messageId: 'm4', error: 're-published, but its outbox row was gone (retention or discard) when its new position was to be recorded' },
  ]);
});
