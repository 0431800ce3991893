import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { PostgresDeadLetterStore } from '../../src/adapters/postgres/postgres-dead-letter-store.ts';
import type { DeadLetterInput } from '../../src/ports/dead-letter-store.ts';
import { freshSchema } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';

/**
 * A replay holds its dead letter's row while it sends the copy. A consumer that takes the copy and fails
 * it for good before the replay commits writes its dead letter meanwhile: it must wait for the replay and
 * open a new one. It found the old row still open (a row lock does not make ON CONFLICT wait), took it for
 * its own, committed its offset past the copy, and the replay then closed that row: the copy's failure
 * left no open dead letter, and the message was neither applied nor waiting for anyone.
 */
let env: Awaited<ReturnType<typeof freshSchema>>;
before(async () => {
  env = await freshSchema('zldr');
});
after(async () => {
  await env.cleanup();
});

function deadLetter(): DeadLetterInput {
  const messageId = randomUUID();
  return {
    groupId: 'billing',
    idempotencyKey: messageId,
    messageId,
    topic: 'orders',
    partition: 1,
    offset: 7n,
    key: 'customer-7',
    type: 'order.created',
    headers: {},
    payload: Buffer.from('{}'),
    errorCode: 'ZL_PERMANENT',
    error: 'card declined',
    stack: undefined,
    attempts: 1,
    firstFailureAt: new Date(),
    lastFailureAt: new Date(),
  };
}

test('the replayed copy failing again while the replay commits opens a new dead letter', async () => {
  const dl = new PostgresDeadLetterStore(env.db, { schema: env.schema });
  const input = deadLetter();
  const { id } = await dl.record(input);
  let again: Promise<{ id: string; inserted: boolean }> | undefined;
  let settled = false;
  const replayed = await dl.replay(id, 'alice', async () => {
    // The copy is on the broker; the consumer fails it for good before the replay's UPDATE commits.
    again = dl.record({ ...input, attempts: 2, error: 'card declined again' });
    void again.then(() => {
      settled = true;
    });
    await waitFor(
      async () =>
        settled ||
        (await env.pool.query(`select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like '%dead_letter%'`)).rows.length >
          0,
      { what: "the consumer's dead letter written or waiting on the replay", timeoutMs: 5_000 },
    );
  });
  assert.equal(replayed, true);
  const result = await again;
  assert.equal(result?.inserted, true, 'a new dead letter, not the one being replayed');
  const { rows } = await env.pool.query(`select status, error from "${env.schema}".dead_letter where idempotency_key = $1 order by id`, [
    input.idempotencyKey,
  ]);
  assert.deepEqual(rows, [
    { status: 'replayed', error: 'card declined' },
    { status: 'dead', error: 'card declined again' },
  ]);
});
