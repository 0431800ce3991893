import assert from 'node:assert/strict';
import { test } from 'node:test';
import type pg from 'pg';
import { AWARD_SOURCE, stateColumnLedger, stateColumnLedgerReader } from '../../../faults/state-column.ts';
import { stableId } from '../../../src/adapters/postgres/state-column-source.ts';

/** A pool that answers the two reads of `outstanding` from arrays the test changes, and counts them. */
function fakePool(awards: Array<{ id: string; mq_state: number }>, outcomes: string[]) {
  const calls = { count: 0 };
  const pool = {
    query: async (sql: string) => {
      calls.count++;
      if (sql.includes('user_strategy_export')) return { rows: awards.map((a) => ({ ...a })) };
      return { rows: outcomes.map((message_id) => ({ message_id })) };
    },
  } as unknown as pg.Pool;
  return { pool, calls };
}

test('the drain progress of the state-column source: right counts, read again at most every everyMs per schema', async () => {
  const awards = [
    { id: '1', mq_state: 1 },
    { id: '2', mq_state: 0 },
  ];
  const outcomes = [stableId(AWARD_SOURCE, '1')];
  const { pool, calls } = fakePool(awards, outcomes);
  let clock = 0;
  const reader = stateColumnLedgerReader({ everyMs: 5_000, now: () => clock });

  assert.deepEqual(await reader.outstanding(pool, 's1'), { pending: 1, unsent: 1 });
  const reads = calls.count;
  // Polled again at once (the drain polls every 250 ms): no new read of 100,000 rows.
  clock += 250;
  assert.deepEqual(await reader.outstanding(pool, 's1'), { pending: 1, unsent: 1 });
  assert.equal(calls.count, reads);
  // Another schema is its own figure.
  awards[1] = { id: '2', mq_state: 1 };
  outcomes.push(stableId(AWARD_SOURCE, '2'));
  assert.deepEqual(await reader.outstanding(pool, 's2'), { pending: 0, unsent: 0 });
  // Once the interval has passed, the first schema's figure is read again and is current.
  clock += 5_000;
  assert.deepEqual(await reader.outstanding(pool, 's1'), { pending: 0, unsent: 0 });
});

test('the suite reader (stateColumnLedger) does not read the award table again at every 250 ms poll', async () => {
  const { pool, calls } = fakePool([{ id: '7', mq_state: 0 }], []);
  assert.deepEqual(await stateColumnLedger.outstanding(pool, 'suite-schema'), { pending: 1, unsent: 1 });
  const reads = calls.count;
  assert.deepEqual(await stateColumnLedger.outstanding(pool, 'suite-schema'), { pending: 1, unsent: 1 });
  assert.equal(calls.count, reads, 'a poll right after the last one is answered from it');
});
