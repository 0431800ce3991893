import assert from 'node:assert/strict';
import { ZerolossError } from '../../src/core/errors.ts';
import { type ClaimedRow, MESSAGE_STATE } from '../../src/ports/outbox-store.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { messageIds, Rollback, type Run, type StoreHarness } from './store-harness.ts';

const isDuplicate = (error: unknown) => error instanceof ZerolossError && error.code === 'ZL_DUPLICATE_MESSAGE_ID';

async function anyDue(h: StoreHarness): Promise<boolean> {
  const probe = h.store.relaySource.anyDue;
  assert.ok(probe, 'the outbox relay source has the cheap due probe');
  return (await probe.call(h.store.relaySource)).due;
}

/** Claims as `owner` until something comes back (a lease or a retry delay running out). */
function claimWhenDue(h: StoreHarness, owner: string, what: string): Promise<ClaimedRow[]> {
  return waitFor(
    async () => {
      const rows = await h.claim(owner);
      return rows.length > 0 ? rows : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 25, what },
  );
}

/** The outbox writer (`store.outbox`) and the outbox as a relay source (`store.relaySource`). */
export function outboxTests(run: Run): void {
  run('outbox: a row inserted in a transaction that rolls back is never claimable and uses no sequence number', async (h) => {
    await assert.rejects(
      h.store.transaction(async (tx) => {
        await h.store.outbox.insert(tx, h.row('k'), true);
        throw new Rollback();
      }),
      Rollback,
    );
    assert.equal(await anyDue(h), false);
    assert.deepEqual(await h.claim('relay-a'), []);
    assert.equal((await h.store.relaySource.backlog()).pending, 0);
    assert.deepEqual(await h.enqueue(h.row('k')), [1]);
  });

  run('outbox: a committed row is due and is claimed with its exact bytes and headers, as attempt 1', async (h) => {
    assert.equal(await anyDue(h), false);
    const before = await h.store.relaySource.anyDue?.();
    const row = h.row('customer-1');
    await h.enqueue(row);
    assert.equal(await anyDue(h), true);
    const after = await h.store.relaySource.anyDue?.();
    assert.ok(
      after?.newest !== undefined && after.newest !== before?.newest,
      `the check's newest moved with the row: ${before?.newest} -> ${after?.newest}`,
    );
    const backlog = await h.store.relaySource.backlog();
    assert.deepEqual([backlog.pending, backlog.failed, backlog.parked], [1, 0, 0]);

    const claimed = await h.claim('relay-a');
    assert.equal(claimed.length, 1);
    const [c] = claimed as [ClaimedRow];
    assert.equal(typeof c.ref, 'string');
    assert.equal(c.messageId, row.messageId);
    assert.equal(c.attempt, 1);
    assert.equal(c.state, MESSAGE_STATE.pending);
    assert.equal(c.record.topic, row.topic);
    assert.equal(c.record.key, row.key);
    assert.ok(Buffer.isBuffer(c.record.value), 'the payload comes back as a Buffer');
    assert.ok(c.record.value.equals(row.payload), 'the payload bytes changed on the way through the table');
    assert.deepEqual(c.record.headers, { ...row.headers, 'zl-seq': '1' });
    assert.equal(await anyDue(h), false, 'a leased row is not due');
  });

  run('outbox: a claimed row is not claimable by another owner until its lease expires', async (h) => {
    const row = h.row('k');
    await h.enqueue(row);
    const first = await h.claim('relay-a', 10, 1_000);
    assert.deepEqual(messageIds(first), [row.messageId]);
    assert.deepEqual(await h.claim('relay-b'), [], 'a leased row was claimed by a second owner');
    const taken = await claimWhenDue(h, 'relay-b', 'the lease of relay-a to expire');
    assert.deepEqual(messageIds(taken), [row.messageId]);
    assert.equal(taken[0]?.attempt, 2);

    // relay-a's late failure report is not recorded over relay-b's lease.
    const parked = await h.store.relaySource.markFailed('relay-a', [
      { ref: first[0]!.ref, error: 'late', action: 'park', delayMs: 0, charge: true },
    ]);
    assert.deepEqual(parked, []);
    assert.equal((await h.store.relaySource.backlog()).parked, 0);
    assert.deepEqual(await h.claim('relay-c'), [], 'the stale owner gave away the new lease');
  });

  run('outbox: a row marked sent leaves the backlog and is never claimed again', async (h) => {
    await h.enqueue(h.row('k'));
    const [c] = await h.claim('relay-a');
    await h.store.relaySource.markSent('relay-a', [{ ref: c!.ref, partition: 3, offset: 99n }]);
    assert.deepEqual(await h.store.relaySource.backlog(), {
      pending: 0,
      failed: 0,
      parked: 0,
      oldestUnsentAgeMs: 0,
      nextDueInMs: undefined,
    });
    assert.equal(await anyDue(h), false);
    assert.deepEqual(await h.claim('relay-b'), []);
  });

  run("outbox: markFailed 'retry' keeps the row back for delayMs, then it is claimed again as the next attempt", async (h) => {
    const row = h.row('k');
    await h.enqueue(row);
    const [c] = await h.claim('relay-a');
    const parked = await h.store.relaySource.markFailed('relay-a', [
      { ref: c!.ref, error: 'broker said no', action: 'retry', delayMs: 1_000, charge: true },
    ]);
    assert.deepEqual(parked, []);
    assert.deepEqual(await h.claim('relay-b'), [], 'a row was claimed before its retry delay ran out');
    assert.equal(await anyDue(h), false);
    const backlog = await h.store.relaySource.backlog();
    assert.deepEqual([backlog.pending, backlog.failed, backlog.parked], [0, 1, 0]);
    assert.ok(
      backlog.nextDueInMs !== undefined && backlog.nextDueInMs > 0 && backlog.nextDueInMs <= 1_000,
      `nextDueInMs ${backlog.nextDueInMs}`,
    );

    const again = await claimWhenDue(h, 'relay-b', 'the retry delay to run out');
    assert.deepEqual(messageIds(again), [row.messageId]);
    assert.equal(again[0]?.attempt, 2);
    assert.equal(again[0]?.state, MESSAGE_STATE.failed);
    assert.ok(again[0]?.record.value.equals(row.payload));
  });

  run("outbox: markFailed 'park' parks the row and holds back its key's later rows, not other keys", async (h) => {
    const first = h.row('k');
    const second = h.row('k');
    const other = h.row('j');
    await h.enqueue(first, second, other);
    const [c] = await h.claim('relay-a', 1);
    assert.equal(c?.messageId, first.messageId);
    const parked = await h.store.relaySource.markFailed('relay-a', [
      { ref: c!.ref, error: 'poison', action: 'park', delayMs: 0, charge: true },
    ]);
    assert.deepEqual(parked, [first.messageId]);
    const backlog = await h.store.relaySource.backlog();
    assert.deepEqual([backlog.pending, backlog.failed, backlog.parked], [2, 0, 1]);

    assert.deepEqual(messageIds(await h.claim('relay-b')), [other.messageId]);
    assert.deepEqual(await h.claim('relay-c'), [], "a row was claimed past its key's parked row");
  });

  run("outbox: markFailed 'release' gives the row back at once without charging the attempt", async (h) => {
    const row = h.row('k');
    await h.enqueue(row);
    const [c] = await h.claim('relay-a');
    assert.equal(c?.attempt, 1);
    const parked = await h.store.relaySource.markFailed('relay-a', [
      { ref: c!.ref, error: 'not attempted', action: 'release', delayMs: 0, charge: true },
    ]);
    assert.deepEqual(parked, []);
    const backlog = await h.store.relaySource.backlog();
    assert.deepEqual([backlog.pending, backlog.failed, backlog.parked], [1, 0, 0]);
    const again = await h.claim('relay-b');
    assert.deepEqual(messageIds(again), [row.messageId]);
    assert.equal(again[0]?.attempt, 1, 'a released claim counted as an attempt');
    assert.equal(again[0]?.state, MESSAGE_STATE.pending);
  });

  run('outbox: rows of one key are claimed in insert order, never past an earlier leased or waiting row', async (h) => {
    const [a1, a2, a3] = [h.row('k'), h.row('k'), h.row('k')];
    const b1 = h.row('j');
    await h.enqueue(a1, a2, a3, b1);
    const first = await h.claim('relay-a', 1);
    assert.deepEqual(messageIds(first), [a1.messageId]);
    assert.deepEqual(messageIds(await h.claim('relay-b')), [b1.messageId], 'a later row of a leased key was claimed');

    await h.store.relaySource.markFailed('relay-a', [{ ref: first[0]!.ref, error: 'x', action: 'retry', delayMs: 800, charge: true }]);
    assert.deepEqual(await h.claim('relay-b'), [], "a later row overtook its key's waiting retry");
    const again = await claimWhenDue(h, 'relay-b', 'the retry of a1 to be due');
    assert.deepEqual(messageIds(again), [a1.messageId, a2.messageId, a3.messageId]);
    assert.deepEqual(
      again.map((r) => r.attempt),
      [2, 1, 1],
    );
  });

  run("outbox: keys held back with a claim's worth of rows or more behind them do not hide the other keys' rows", async (h) => {
    // One key held by each kind of holder: a parked row, a row waiting out its retry delay, a live lease.
    const holders = [h.row('parked'), h.row('waiting'), h.row('leased')];
    await h.enqueue(...holders);
    const claimed = await h.claim('relay-a', 3);
    const ref = (key: string) => claimed.find((c) => c.record.key === key)?.ref as string;
    await h.store.relaySource.markFailed('relay-a', [
      { ref: ref('parked'), error: 'poison', action: 'park', delayMs: 0, charge: true },
      { ref: ref('waiting'), error: 'x', action: 'retry', delayMs: 60_000, charge: true },
    ]);
    // Each has more due rows behind it than one claim takes; the other key's row comes last.
    await h.enqueue(...['parked', 'waiting', 'leased'].flatMap((key) => Array.from({ length: 6 }, () => h.row(key))));
    const other = h.row('other');
    await h.enqueue(other);
    // Before, the claim took the 5 oldest due rows, found every one held back, and returned nothing, for as
    // long as the holds lasted (the parked one: until a person acts).
    assert.deepEqual(messageIds(await h.claim('relay-b', 5)), [other.messageId]);
    assert.deepEqual(await h.claim('relay-b', 5), [], 'a row was claimed past its key’s holder');
  });

  run('outbox: sequence numbers per (producer, key) are gapless: 1, 2, 3, past rollbacks and unsequenced rows', async (h) => {
    const { outbox } = h.store;
    assert.deepEqual(await h.enqueue(h.row('k'), h.row('k'), h.row('k')), [1, 2, 3]);
    await assert.rejects(
      h.store.transaction(async (tx) => {
        await outbox.insert(tx, h.row('k'), true);
        throw new Rollback();
      }),
      Rollback,
    );
    const unsequenced = await h.store.transaction((tx) => outbox.insert(tx, h.row('k'), false));
    assert.deepEqual(unsequenced, { seq: 0 });
    const inOne = await h.store.transaction(async (tx) => [
      (await outbox.insert(tx, h.row('k'), true)).seq,
      (await outbox.insert(tx, h.row('k'), true)).seq,
    ]);
    assert.deepEqual(inOne, [4, 5]);
    assert.deepEqual(await h.enqueue(h.row('j'), h.row('k', { producerId: 'producer-2' })), [1, 1]);
  });

  run('outbox: a duplicate message id is ZL_DUPLICATE_MESSAGE_ID, leaves the transaction usable and uses no sequence number', async (h) => {
    const { outbox } = h.store;
    const row = h.row('k');
    await h.store.transaction(async (tx) => {
      assert.deepEqual(await outbox.insert(tx, row, true), { seq: 1 });
      await assert.rejects(outbox.insert(tx, h.row('k', { messageId: row.messageId }), true), isDuplicate);
      await assert.rejects(outbox.insert(tx, h.row('j', { messageId: row.messageId }), true), isDuplicate);
      assert.deepEqual(await outbox.insert(tx, h.row('k'), true), { seq: 2 });
    });
    await assert.rejects(h.enqueue(h.row('k', { messageId: row.messageId })), isDuplicate);
    assert.deepEqual(await h.enqueue(h.row('k'), h.row('j')), [3, 1]);

    const claimed = await h.claim('relay-a');
    assert.equal(claimed.length, 4);
    assert.ok(claimed[0]?.record.value.equals(row.payload), 'the duplicate replaced the original row');
  });

  run(
    'outbox: with notify on, each commit that inserted rows wakes the relay source channel; a rollback does not',
    async (h) => {
      const channel = h.store.relaySource.wakeChannel;
      assert.equal(typeof channel, 'string');
      let wakes = 0;
      const unlisten = await h.store.db.listen(channel!, () => {
        wakes++;
      });
      try {
        // A listener may be called once with '' as it connects; count from after that.
        const before = wakes;
        await assert.rejects(
          h.store.transaction(async (tx) => {
            await h.store.outbox.insert(tx, h.row('k'), true);
            throw new Rollback();
          }),
          Rollback,
        );
        await h.enqueue(h.row('k'));
        await waitFor(() => wakes > before, { timeoutMs: 10_000, what: 'a wake-up on the outbox channel' });
        assert.equal(wakes, before + 1, 'the rolled-back insert woke the relay too');
      } finally {
        await unlisten();
      }
    },
    { notify: true },
  );

  run(
    'outbox: sendStatus reads many ids in one call: pending, sent with the partition and offset recorded, parked with its error; unknown ids absent',
    async (h) => {
      const read = h.store.outbox.sendStatus;
      assert.ok(read, 'the outbox writer reads send states (outbox.whenSent polls it)');
      const status = (ids: string[]) => read.call(h.store.outbox, ids);
      const [pending, sent, parked] = [h.row('a'), h.row('b'), h.row('c')];
      await h.enqueue(pending, sent, parked);
      await assert.rejects(
        h.store.transaction(async (tx) => {
          await h.store.outbox.insert(tx, h.row('d', { messageId: 'rolled-back' }), true);
          throw new Rollback();
        }),
        Rollback,
      );
      const claimed = await h.claim('relay-a');
      const ref = (id: string) => claimed.find((c) => c.messageId === id)!.ref;
      await h.store.relaySource.markSent('relay-a', [{ ref: ref(sent.messageId), partition: 4, offset: 2n ** 62n }]);
      await h.store.relaySource.markFailed('relay-a', [
        { ref: ref(parked.messageId), error: 'MESSAGE_TOO_LARGE', action: 'park', delayMs: 0, charge: true },
        { ref: ref(pending.messageId), error: 'broker away', action: 'retry', delayMs: 60_000, charge: false },
      ]);

      const byId = new Map(
        (await status([pending.messageId, sent.messageId, parked.messageId, 'rolled-back', 'never'])).map((s) => [s.messageId, s]),
      );
      assert.deepEqual([...byId.keys()].sort(), [pending.messageId, sent.messageId, parked.messageId].sort());
      const s = byId.get(sent.messageId)!;
      assert.deepEqual([s.state, s.topic, s.partition, s.offset], [MESSAGE_STATE.sent, 'orders', 4, 2n ** 62n]);
      assert.ok(s.sentAt instanceof Date);
      const p = byId.get(parked.messageId)!;
      assert.deepEqual(
        [p.state, p.lastError, p.partition, p.offset, p.sentAt],
        [MESSAGE_STATE.parked, 'MESSAGE_TOO_LARGE', undefined, undefined, undefined],
      );
      const f = byId.get(pending.messageId)!;
      assert.deepEqual([f.state, f.lastError], [MESSAGE_STATE.failed, 'broker away']);
      assert.deepEqual(await status([]), []);
    },
  );

  run('outbox: with notify off, the relay source has no wake channel', async (h) => {
    assert.equal(h.store.relaySource.wakeChannel, undefined);
  });
}
