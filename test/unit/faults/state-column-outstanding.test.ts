import assert from 'node:assert/strict';
import { test } from 'node:test';
import type pg from 'pg';
import { AWARD_SOURCE, stateColumnLedger } from '../../../faults/state-column.ts';
import { stableId } from '../../../src/adapters/postgres/state-column-source.ts';

/** A pool that answers the two reads of `outstanding` from arrays the test changes. */
function fakePool(awards: Array<{ id: string; mq_state: number }>, outcomes: string[]) {
  return {
    query: async (sql: string) => {
      if (sql.includes('user_strategy_export')) return { rows: awards.map((a) => ({ ...a })) };
      return { rows: outcomes.map((message_id) => ({ message_id })) };
    },
  } as unknown as pg.Pool;
}

test('the drain progress of the state-column source: rows without an effect or dead letter, rows unsent', async () => {
  const awards = [
    { id: '1', mq_state: 1 },
    { id: '2', mq_state: 0 },
  ];
  const outcomes = [stableId(AWARD_SOURCE, '1')];
  const pool = fakePool(awards, outcomes);
  assert.deepEqual(await stateColumnLedger.outstanding(pool, 's'), { pending: 1, unsent: 1 });
  awards[1] = { id: '2', mq_state: 1 };
  outcomes.push(stableId(AWARD_SOURCE, '2'));
  assert.deepEqual(await stateColumnLedger.outstanding(pool, 's'), { pending: 0, unsent: 0 });
});

test('the state-column reader is not read at every 250 ms poll of the drain: it asks for seconds between readings', () => {
  // It reads every award row into the harness; at 100,000 rows every 250 ms that starved the consumers.
  assert.ok((stateColumnLedger.progressEveryMs ?? 0) >= 1_000, `progressEveryMs ${stateColumnLedger.progressEveryMs}`);
});
