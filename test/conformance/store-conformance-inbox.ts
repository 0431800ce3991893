import assert from 'node:assert/strict';
import type { Claim, InboxEntry, StartRef } from '../../src/ports/inbox-store.ts';
import { digest, Rollback, type Run, type StoreHarness } from './store-harness.ts';

const CLAIMED: Claim = { kind: 'claimed' };
const DUPLICATE: Claim = { kind: 'duplicate' };

function claim(h: StoreHarness, entry: InboxEntry): Promise<Claim> {
  return h.store.transaction((tx) => h.store.inbox.claim(tx, entry));
}

function startRef(offset: bigint, partition = 0): StartRef {
  return { groupId: 'billing', topic: 'orders', partition, offset, messageId: `m-${partition}-${offset}` };
}

/** The inbox (`store.inbox` as InboxStore), its database-stored offsets and its start log (StartLog). */
export function inboxTests(run: Run): void {
  run('inbox: a new key is claimed; the same key again, after commit, is a duplicate, per consumer group', async (h) => {
    const d = digest();
    assert.equal(await h.store.inbox.contains('billing', 'm-1'), false);
    assert.deepEqual(await claim(h, h.entry('billing', 'm-1', d)), CLAIMED);
    assert.equal(await h.store.inbox.contains('billing', 'm-1'), true);
    assert.equal(await h.store.inbox.contains('billing', 'm-1', d), true, 'the same content');
    assert.equal(await h.store.inbox.contains('billing', 'm-1', digest()), false, 'another message under the id is not the one applied');
    assert.deepEqual(await claim(h, h.entry('billing', 'm-1', d)), DUPLICATE);
    assert.deepEqual(await claim(h, h.entry('billing', 'm-1')), DUPLICATE, 'a copy without a digest is a duplicate');
    assert.deepEqual(await claim(h, h.entry('shipping', 'm-1', d)), CLAIMED, 'another group has an inbox of its own');
  });

  run('inbox: the same key with another content digest is a conflict that names the applied digest', async (h) => {
    const applied = digest();
    assert.deepEqual(await claim(h, h.entry('billing', 'm-1', applied)), CLAIMED);
    assert.deepEqual(await claim(h, h.entry('billing', 'm-1', digest())), { kind: 'conflict', appliedDigest: applied });
    // A row without a digest (a handler-chosen key, or written before digests) has nothing to compare with.
    assert.deepEqual(await claim(h, h.entry('billing', 'business-key')), CLAIMED);
    assert.deepEqual(await claim(h, h.entry('billing', 'business-key', digest())), DUPLICATE);
  });

  run('inbox: a key with an open dead letter is parked (in a batch too); a replay of it is claimed, once', async (h) => {
    const parkedKey = 'm-dead#d1';
    await h.store.deadLetters.record(h.deadLetter({ groupId: 'billing', idempotencyKey: parkedKey }));
    const parked = { ...h.entry('billing', 'm-dead'), deadLetterKey: parkedKey };
    assert.deepEqual(await claim(h, parked), { kind: 'dead-lettered' });
    assert.deepEqual(await claim(h, { ...parked, groupId: 'shipping' }), CLAIMED, "another group's dead letter parks nothing");
    const batch = await h.store.transaction((tx) => h.store.inbox.claimMany(tx, [parked, h.entry('billing', 'm-live'), parked]));
    assert.deepEqual(batch, [{ kind: 'dead-lettered' }, CLAIMED, { kind: 'dead-lettered' }]);
    assert.equal(await h.store.inbox.contains('billing', 'm-dead'), false);
    assert.deepEqual(await claim(h, { ...parked, deadLetterKey: null }), CLAIMED, 'a replay (no dead-letter key) is applied');
    assert.deepEqual(await claim(h, parked), DUPLICATE, 'applied now: a later copy is a plain duplicate');
  });

  run('inbox: in one batch, a copy of a parked key with another dead-letter probe is claimed as it would be alone', async (h) => {
    const parkedKey = 'm-dead#d1';
    await h.store.deadLetters.record(h.deadLetter({ groupId: 'billing', idempotencyKey: parkedKey }));
    const parked = { ...h.entry('billing', 'm-dead'), deadLetterKey: parkedKey };
    const replay = { ...parked, deadLetterKey: null };
    // The redelivered copy right before the replay copy, in one shared transaction: the replay was parked
    // with it, and its dead letter then marked replayed though nothing was applied.
    const batch = await h.store.transaction((tx) => h.store.inbox.claimMany(tx, [parked, replay, parked]));
    assert.deepEqual(batch.slice(0, 2), [{ kind: 'dead-lettered' }, CLAIMED]);
    assert.notDeepEqual(batch[2], CLAIMED, 'the copy after it is not applied again');
    assert.equal(await h.store.inbox.contains('billing', 'm-dead'), true);
  });

  run('inbox: a claim rolled back with its transaction leaves no trace', async (h) => {
    const entry = h.entry('billing', 'm-1', digest());
    await assert.rejects(
      h.store.transaction(async (tx) => {
        assert.deepEqual(await h.store.inbox.claim(tx, entry), CLAIMED);
        throw new Rollback();
      }),
      Rollback,
    );
    assert.equal(await h.store.inbox.contains('billing', 'm-1'), false);
    assert.deepEqual(await claim(h, entry), CLAIMED);
  });

  run('inbox: of two transactions claiming one key at once, exactly one claims it', async (h) => {
    const d = digest();
    const claims = await Promise.all([claim(h, h.entry('billing', 'm-1', d)), claim(h, h.entry('billing', 'm-1', d))]);
    assert.deepEqual(claims.map((c) => c.kind).sort(), ['claimed', 'duplicate']);
  });

  run('inbox: claimMany claims only the first copy of a key in a batch, and unclaimMany takes claims back', async (h) => {
    const { inbox } = h.store;
    const d1 = digest();
    const claims = await h.store.transaction((tx) =>
      inbox.claimMany(tx, [
        h.entry('billing', 'a', d1),
        h.entry('billing', 'b'),
        h.entry('billing', 'a', d1),
        h.entry('billing', 'a', digest()),
      ]),
    );
    assert.deepEqual(claims, [CLAIMED, CLAIMED, DUPLICATE, { kind: 'conflict', appliedDigest: d1 }]);

    const again = await h.store.transaction(async (tx) => {
      const result = await inbox.claimMany(tx, [h.entry('billing', 'c'), h.entry('billing', 'a', d1)]);
      await inbox.unclaimMany(tx, [h.entry('billing', 'c')]);
      return result;
    });
    assert.deepEqual(again, [CLAIMED, DUPLICATE]);
    assert.equal(await inbox.contains('billing', 'c'), false, 'an unclaimed key stayed');
    assert.equal(await inbox.contains('billing', 'a'), true);
  });

  run('inbox: cleanup deletes only rows older than the retention, at most limit a call, of its group only', async (h) => {
    const { inbox } = h.store;
    for (const key of ['old-1', 'old-2', 'old-3', 'fresh']) await claim(h, h.entry('billing', key));
    await claim(h, h.entry('shipping', 'old-1'));
    // Setup only: age three rows by two hours, which the port has no way to do (the database clock sets processed_at).
    await h.store.db.query(`update "${h.schema}".inbox set processed_at = now() - interval '2 hours' where idempotency_key like 'old-%'`);

    const hour = 3_600_000;
    assert.equal(await inbox.cleanup('billing', hour, 2), 2);
    assert.equal(await inbox.cleanup('billing', hour, 2), 1);
    assert.equal(await inbox.cleanup('billing', hour, 2), 0);
    for (const key of ['old-1', 'old-2', 'old-3']) assert.equal(await inbox.contains('billing', key), false, key);
    assert.equal(await inbox.contains('billing', 'fresh'), true, 'a row younger than the retention was deleted');
    assert.equal(await inbox.contains('shipping', 'old-1'), true, "another group's row was deleted");
  });

  run('inbox: stored offsets load back per group and topic, commit with their transaction and never move back', async (h) => {
    const { inbox } = h.store;
    const store = (groupId: string, topic: string, partition: number, offset: bigint) =>
      h.store.transaction((tx) => inbox.storeOffset(tx, groupId, topic, partition, offset));
    const load = async (groupId: string, topics: string[]) =>
      (await inbox.loadOffsets(groupId, topics)).sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);

    assert.deepEqual(await load('billing', ['orders']), []);
    await store('billing', 'orders', 0, 10n);
    await store('billing', 'orders', 1, 3n);
    await store('billing', 'payments', 0, 2n ** 62n);
    await store('shipping', 'orders', 0, 99n);
    assert.deepEqual(await load('billing', ['orders']), [
      { topic: 'orders', partition: 0, offset: 10n },
      { topic: 'orders', partition: 1, offset: 3n },
    ]);

    await store('billing', 'orders', 0, 5n);
    assert.equal((await load('billing', ['orders']))[0]?.offset, 10n, 'a stored offset moved back');
    await store('billing', 'orders', 0, 12n);
    await assert.rejects(
      h.store.transaction(async (tx) => {
        await inbox.storeOffset(tx, 'billing', 'orders', 0, 50n);
        throw new Rollback();
      }),
      Rollback,
    );
    assert.deepEqual(await load('billing', ['orders', 'payments']), [
      { topic: 'orders', partition: 0, offset: 12n },
      { topic: 'orders', partition: 1, offset: 3n },
      { topic: 'payments', partition: 0, offset: 2n ** 62n },
    ]);
  });

  run('inbox: the start log notices unfinished starts, takes released ones back and forgets below a committed offset', async (h) => {
    const log = h.store.inbox;
    const first = { failed: 0 };
    assert.deepEqual(await log.firstStart(startRef(5n)), first);
    assert.equal(await log.firstStart(startRef(5n)), false, 'an unfinished start went unnoticed');
    assert.deepEqual(await log.countStart(startRef(5n)), { started: 2, failed: 0 });
    assert.deepEqual(await log.countStart(startRef(5n)), { started: 3, failed: 0 });

    assert.deepEqual(await log.firstStart(startRef(6n)), first);
    await log.release(startRef(6n));
    assert.deepEqual(await log.firstStart(startRef(6n)), first, 'a released start counted as a crash');

    // A failed attempt leaves its number: the record's next first start (after a crash) goes on from there.
    await log.release({ ...startRef(6n), failedAttempt: 2 });
    assert.deepEqual(await log.firstStart(startRef(6n)), { failed: 2 });
    await log.release(startRef(6n));
    assert.deepEqual(await log.firstStart(startRef(6n)), { failed: 2 }, 'a release without a failure forgot the failed attempts');
    // A suspect (its start never finished) is told the failed attempts too.
    assert.deepEqual(await log.countStart(startRef(6n)), { started: 2, failed: 2 });

    // Asked for twice in one turn (two lanes), a record starts once.
    assert.deepEqual(await Promise.all([log.firstStart(startRef(7n)), log.firstStart(startRef(7n))]), [first, false]);
    assert.deepEqual(await log.firstStart(startRef(1n, 1)), first);
    assert.deepEqual(await log.firstStart(startRef(8n)), first);

    await log.forget('billing', 'orders', 0, 8n);
    assert.deepEqual(await log.firstStart(startRef(5n)), first, 'a mark below the committed offset was kept');
    assert.deepEqual(await log.firstStart(startRef(7n)), first, 'a mark below the committed offset was kept');
    assert.equal(await log.firstStart(startRef(8n)), false, 'the mark at the committed offset was forgotten');
    assert.equal(await log.firstStart(startRef(1n, 1)), false, "another partition's mark was forgotten");
  });
}
