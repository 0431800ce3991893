import assert from 'node:assert/strict';
import { tableLog } from '../../src/entry/table-log.ts';
import { REPLAY_HEADER, replayDeadLetters } from '../../src/consumer/dead-letters.ts';
import type { Run } from './store-harness.ts';

type Sent = { topic: string; key: string; value: Buffer; headers: Record<string, string> };

/** Dead letters (`store.deadLetters`): the consumer's writer half and the operator's queue half. */
export function deadLetterTests(run: Run): void {
  run('dead letters: a recorded dead letter is listed and shown with its reason, original bytes and details', async (h) => {
    const dl = h.store.deadLetters;
    const input = h.deadLetter();
    const recorded = await dl.record(input);
    assert.deepEqual(
      { inserted: recorded.inserted, published: recorded.published, copyError: recorded.copyError },
      { inserted: true, published: false, copyError: null },
    );

    const listed = await dl.list({ groupId: 'billing' });
    assert.equal(listed.length, 1);
    const { createdAt, ...summary } = listed[0]!;
    assert.ok(createdAt instanceof Date && !Number.isNaN(createdAt.getTime()));
    assert.deepEqual(summary, {
      id: recorded.id,
      groupId: 'billing',
      topic: 'orders',
      partition: 1,
      offset: '7',
      key: 'customer-7',
      type: 'order.created',
      messageId: input.messageId,
      errorCode: 'ZL_PERMANENT',
      error: 'card declined',
      attempts: 3,
      status: 'dead',
      lastFailureAt: input.lastFailureAt,
      replayCount: 0,
    });

    const detail = await dl.get(recorded.id);
    assert.ok(detail);
    assert.equal(detail.idempotencyKey, input.idempotencyKey);
    assert.deepEqual(detail.headers, input.headers);
    assert.ok(detail.payload.equals(input.payload), 'the payload bytes changed on the way through the table');
    assert.equal(detail.stack, input.stack);
    assert.deepEqual(detail.firstFailureAt, input.firstFailureAt);
    assert.deepEqual(detail.details, input.details);
    assert.deepEqual([detail.publishedAt, detail.copyError, detail.resolvedAt, detail.resolvedBy], [null, null, null, null]);

    // An unreadable record has no message id, type, stack or details.
    const bare = await dl.record(
      h.deadLetter({ idempotencyKey: 'offset:orders/1/8', messageId: undefined, type: undefined, stack: undefined, details: undefined }),
    );
    const bareDetail = await dl.get(bare.id);
    assert.deepEqual([bareDetail?.messageId, bareDetail?.type, bareDetail?.stack, bareDetail?.details], [null, null, null, null]);
  });

  run('dead letters: the same message recorded twice is one open row, which reports its copy being published or refused', async (h) => {
    const dl = h.store.deadLetters;
    const input = h.deadLetter();
    const first = await dl.record(input);
    const again = await dl.record({ ...input, attempts: 4, error: 'declined again' });
    assert.deepEqual(again, { id: first.id, inserted: false, published: false, copyError: null });

    await dl.markPublished(first.id);
    assert.equal((await dl.record(input)).published, true);
    await dl.markCopyRejected(first.id, 'record too large for orders.dlq');
    assert.equal((await dl.record(input)).copyError, 'record too large for orders.dlq');
    const detail = await dl.get(first.id);
    assert.ok(detail?.publishedAt instanceof Date);
    assert.equal(detail?.copyError, 'record too large for orders.dlq');
    assert.equal(detail?.error, 'card declined', 'a repeated record overwrote the first one');
    assert.equal((await dl.list()).length, 1);
  });

  run('dead letters: list filters by status, topic and group, newest first, and pages with before and limit', async (h) => {
    const dl = h.store.deadLetters;
    const a = await dl.record(h.deadLetter({ groupId: 'billing', topic: 'orders' }));
    const b = await dl.record(h.deadLetter({ groupId: 'billing', topic: 'payments' }));
    const c = await dl.record(h.deadLetter({ groupId: 'shipping', topic: 'orders' }));
    assert.equal(await dl.discard(c.id, 'bob'), true);
    const ids = async (filter: Parameters<typeof dl.list>[0]) => (await dl.list(filter)).map((d) => d.id);

    assert.deepEqual(await ids({}), [c.id, b.id, a.id]);
    assert.deepEqual(await ids({ topic: 'orders' }), [c.id, a.id]);
    assert.deepEqual(await ids({ groupId: 'billing' }), [b.id, a.id]);
    assert.deepEqual(await ids({ status: 'dead' }), [b.id, a.id]);
    assert.deepEqual(await ids({ status: 'discarded' }), [c.id]);
    assert.deepEqual(await ids({ status: 'dead', topic: 'orders', groupId: 'billing' }), [a.id]);
    assert.deepEqual(await ids({ limit: 1 }), [c.id]);
    assert.deepEqual(await ids({ before: c.id, limit: 1 }), [b.id]);
    assert.deepEqual(await ids({ before: a.id }), []);
  });

  run('dead letters: replay hands send the original record, marks the row replayed, and a later failure opens a new row', async (h) => {
    const dl = h.store.deadLetters;
    const input = h.deadLetter();
    const { id } = await dl.record(input);
    const sent: Sent[] = [];
    assert.equal(
      await dl.replay(id, 'alice', async (record) => {
        sent.push(record);
      }),
      true,
    );
    assert.equal(sent.length, 1);
    assert.equal(sent[0]?.topic, input.topic);
    assert.equal(sent[0]?.key, input.key);
    assert.deepEqual(sent[0]?.headers, input.headers);
    assert.ok(sent[0]?.value.equals(input.payload));

    const detail = await dl.get(id);
    assert.equal(detail?.status, 'replayed');
    assert.equal(detail?.replayCount, 1);
    assert.equal(detail?.resolvedBy, 'alice');
    assert.ok(detail?.resolvedAt instanceof Date);
    assert.deepEqual(await dl.list({ status: 'dead' }), []);

    const reopened = await dl.record(input);
    assert.equal(reopened.inserted, true, 'the replayed copy failing again did not open a new dead letter');
    assert.notEqual(reopened.id, id);
  });

  run('dead letters: a replay of what was listed open leaves a dead letter discarded since alone; by its id it replays', async (h) => {
    // `dlq replay --all` lists the open ids, then replays one by one: another operator's discard in between
    // was overridden (sent, applied, marked replayed, and the CLI said so).
    const dl = h.store.deadLetters;
    const { id } = await dl.record(h.deadLetter());
    assert.equal(await dl.discard(id, 'bob'), true);
    let sends = 0;
    await assert.rejects(
      dl.replay(
        id,
        'alice',
        async () => {
          sends++;
        },
        { skipDiscarded: true },
      ),
      { code: 'ZL_MESSAGE_NOT_FOUND', message: /is discarded now/ },
    );
    assert.equal(sends, 0);
    assert.equal((await dl.get(id))?.status, 'discarded');
    // Asked for by its id, a person's explicit choice: replayed.
    assert.equal(
      await dl.replay(id, 'alice', async () => {
        sends++;
      }),
      true,
    );
    assert.equal(sends, 1);
  });

  // The operator's replay sends through the transport; the table log, the embedded transport, writes to
  // the very database the store is in, while replay holds the dead letter's row: it must take the copy in
  // the transaction replay hands to send (on single-connection PGlite anything else waits forever).
  run('dead letters: a replay over the table log in the same database commits the copy with the replayed mark', async (h) => {
    const dl = h.store.deadLetters;
    const { id } = await dl.record(h.deadLetter());
    const transport = tableLog(h.store);
    await transport.ensureTopic('orders', 2);
    const [result] = await replayDeadLetters(dl, transport.publisher, [id], 'alice');
    assert.deepEqual(result, { id, ok: true });
    const records = await h.store.db.query<{ headers: Record<string, string> }>(
      `select headers from "${h.schema}".log_record where topic = 'orders'`,
    );
    assert.equal(records.rows.length, 1);
    assert.equal(records.rows[0]!.headers[REPLAY_HEADER], id);
    assert.equal((await dl.get(id))?.status, 'replayed');
  });

  run('dead letters: a replay whose send fails leaves the row dead and rethrows', async (h) => {
    const dl = h.store.deadLetters;
    const { id } = await dl.record(h.deadLetter());
    await assert.rejects(
      dl.replay(id, 'alice', async () => {
        throw new Error('broker down');
      }),
      /broker down/,
    );
    const detail = await dl.get(id);
    assert.equal(detail?.status, 'dead');
    assert.equal(detail?.replayCount, 0);
    assert.equal(detail?.resolvedBy, null);
  });

  run('dead letters: discard closes an open row once; unknown and malformed ids are refused', async (h) => {
    const dl = h.store.deadLetters;
    const { id } = await dl.record(h.deadLetter());
    assert.equal(await dl.discard(id, 'bob'), true);
    const detail = await dl.get(id);
    assert.equal(detail?.status, 'discarded');
    assert.equal(detail?.resolvedBy, 'bob');
    assert.equal(await dl.discard(id, 'bob'), false, 'a discarded row was discarded again');

    let sends = 0;
    const send = async () => {
      sends++;
    };
    assert.equal(await dl.discard('999999', 'bob'), false);
    assert.equal(await dl.discard('not-an-id', 'bob'), false);
    assert.equal(await dl.replay('999999', 'alice', send), false);
    assert.equal(await dl.replay('not-an-id', 'alice', send), false);
    assert.equal(sends, 0);
    assert.equal(await dl.get('999999'), undefined);
    assert.equal(await dl.get('not-an-id'), undefined);
  });
}
