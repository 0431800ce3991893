import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TableLogAdmin } from '../../src/adapters/table-log/table-log-admin.ts';
import { GroupMembership } from '../../src/adapters/table-log/table-log-group.ts';
import { TableLogPublisher } from '../../src/adapters/table-log/table-log-publisher.ts';
import { tableLogChannel, tableLogSql } from '../../src/adapters/table-log/table-log-sql.ts';
import { TableLogSubscriber } from '../../src/adapters/table-log/table-log-subscriber.ts';
import type { TableLogSubscription } from '../../src/adapters/table-log/table-log-subscription.ts';
import type { IncomingRecord } from '../../src/core/envelope.ts';
import { faultyDatabase } from '../helpers/faulty-database.ts';
import { freshSchema } from '../helpers/pg.ts';
import { FAST_GROUP } from '../helpers/table-log.ts';
import { waitFor } from '../helpers/wait-for.ts';

describe('table log consumer groups on Postgres', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let admin: TableLogAdmin;
  let publisher: TableLogPublisher;
  const open: TableLogSubscription[] = [];
  before(async () => {
    env = await freshSchema('zltlg');
    admin = new TableLogAdmin(env.db, { schema: env.schema });
    publisher = new TableLogPublisher(env.db, { schema: env.schema });
  });
  after(async () => {
    for (const s of open) await s.close().catch(() => {});
    await env.cleanup();
  });

  const publish = async (topic: string, n: number, prefix: string) => {
    const outcomes = await publisher.publish(
      Array.from({ length: n }, (_, i) => ({ topic, key: `k${i}`, value: Buffer.from(`${prefix}-${i}`), headers: {} })),
    );
    assert.ok(outcomes.every((o) => o.ok));
  };
  const member = async (
    groupId: string,
    topic: string,
    extra: { onRevoke?: (ps: unknown[]) => Promise<void>; db?: typeof env.db } = {},
  ) => {
    const records: IncomingRecord[] = [];
    const subscriber = new TableLogSubscriber(extra.db ?? env.db, { schema: env.schema, ...FAST_GROUP });
    const errors: Error[] = [];
    subscriber.on('error', (e) => errors.push(e));
    const sub = await subscriber.subscribe({
      groupId,
      topics: [topic],
      onRecords: (b) => records.push(...b.records),
      onRevoke: extra.onRevoke,
    });
    open.push(sub);
    return { sub, records, errors };
  };
  const owners = async (groupId: string) => (await admin.describeGroup(groupId)).owners;
  const leaseOf = async (groupId: string, memberId: string) =>
    Date.parse((await admin.describeGroup(groupId)).members.find((m) => m.memberId === memberId)?.leaseUntil ?? '');

  test('a partition moves to a joining member only after the owner’s onRevoke has finished', async () => {
    await admin.createTopic('revoke', 2);
    await publish('revoke', 10, 'r');
    let openGate: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    let revoked: unknown[] | undefined;
    const a = await member('g-revoke', 'revoke', {
      onRevoke: async (ps) => {
        revoked = ps;
        await gate;
        // Commits made inside onRevoke still land: the partition is not handed back yet.
        await a.sub.commit([{ topic: 'revoke', partition: (ps[0] as { partition: number }).partition, offset: 1n }]);
      },
    });
    await waitFor(() => new Set(a.records.map((r) => r.offset + BigInt(r.partition) * 100n)).size === 10, { what: 'a has everything' });
    const b = await member('g-revoke', 'revoke');
    await waitFor(() => revoked !== undefined, { what: 'a asked to give a partition back' });
    // Let b run several rebalance passes (its lease renews once per pass interval) while a is still busy.
    const lease0 = await leaseOf('g-revoke', b.sub.memberId);
    await waitFor(async () => (await leaseOf('g-revoke', b.sub.memberId)) > lease0, { what: 'b heartbeat 1' });
    const lease1 = await leaseOf('g-revoke', b.sub.memberId);
    await waitFor(async () => (await leaseOf('g-revoke', b.sub.memberId)) > lease1, { what: 'b heartbeat 2' });
    assert.deepEqual(b.sub.assignment(), [], 'b got a partition while a was still in onRevoke');
    assert.ok((await owners('g-revoke')).every((o) => o.memberId === a.sub.memberId));
    assert.equal(b.records.length, 0);

    openGate();
    await waitFor(() => b.sub.assignment().length === 1 && a.sub.assignment().length === 1, { what: 'one partition each' });
    const moved = (revoked![0] as { partition: number }).partition;
    assert.deepEqual(b.sub.assignment(), [{ topic: 'revoke', partition: moved }]);
    const committed = await admin.committedOffsets('g-revoke', 'revoke');
    assert.deepEqual(
      committed.map((c) => [c.partition, c.offset]),
      [[moved, 1n]],
    );
    await waitFor(() => b.records.length > 0, { what: 'b receives the moved partition' });
    assert.equal(b.records[0]!.offset, 1n, 'b starts at the offset a committed in onRevoke');
  });

  test('a member cut off from the database loses its partitions after its lease, cannot commit them, and rejoins', async () => {
    await admin.createTopic('lease', 2);
    await publish('lease', 10, 'l');
    const faulty = faultyDatabase(env.db);
    const a = await member('g-lease', 'lease', { db: faulty.db });
    await waitFor(() => a.records.length === 10, { what: 'a has everything' });
    const held = a.sub.assignment();
    assert.equal(held.length, 2);

    faulty.state.cut = true;
    const b = await member('g-lease', 'lease');
    await waitFor(() => b.sub.assignment().length === 2, { what: 'b takes both partitions once a’s lease ran out' });
    await waitFor(() => b.records.length === 10, { what: 'b re-reads a’s uncommitted records' });
    b.sub.pause();

    faulty.state.cut = false;
    const attempt = a.sub.commit(held.map((p) => ({ ...p, offset: 5n })));
    await assert.rejects(attempt, { code: 'ZL_COMMIT_FENCED' });
    assert.deepEqual(await admin.committedOffsets('g-lease'), [], 'the fenced commit wrote nothing');

    // Once healed, a notices its lease ran out, rejoins, and the group splits the partitions again.
    await waitFor(() => a.sub.assignment().length === 1 && b.sub.assignment().length === 1, { what: 'a rejoined and got one partition' });
    assert.ok(a.errors.length > 0, 'the cut was reported through the error event');
  });

  test('claims bump the generation and fence the previous owner’s commit in SQL', async () => {
    await admin.createTopic('fence', 1);
    await publish('fence', 3, 'f');
    const common = { db: env.db, sql: tableLogSql(env.schema), channel: tableLogChannel(env.schema), topics: ['fence'], sessionMs: 60_000 };
    const a = new GroupMembership({ ...common, groupId: 'g-fence', memberId: 'a' });
    const b = new GroupMembership({ ...common, groupId: 'g-fence', memberId: 'b' });
    await a.join();
    await b.join();
    const [claimedA] = await a.claim([{ topic: 'fence', partition: 0 }]);
    assert.equal(claimedA?.generation, 1n);
    assert.deepEqual(await b.claim([{ topic: 'fence', partition: 0 }]), [], 'a live owner keeps its partition');
    await env.pool.query(`update "${env.schema}".log_group_member set lease_until = now() - interval '1 second' where member_id = 'a'`);
    const [claimedB] = await b.claim([{ topic: 'fence', partition: 0 }]);
    assert.equal(claimedB?.generation, 2n);
    assert.deepEqual(await a.commit([{ ...claimedA!, offset: 3n }]), [{ topic: 'fence', partition: 0, status: 'fenced' }]);
    assert.deepEqual(await b.commit([{ ...claimedB!, offset: 4n }]), [{ topic: 'fence', partition: 0, status: 'beyond_end' }]);
    assert.deepEqual(await b.commit([{ ...claimedB!, offset: 2n }]), [{ topic: 'fence', partition: 0, status: 'committed' }]);
    assert.equal(await a.heartbeat(), false, 'an expired lease is not silently renewed');
    const committed = await admin.committedOffsets('g-fence');
    assert.deepEqual(
      committed.map((c) => [c.offset, c.memberId, c.generation]),
      [[2n, 'b', 2n]],
    );
  });

  test('a publish wakes an idle member through NOTIFY, long before its next poll', async () => {
    await admin.createTopic('wake', 2);
    const subscriber = new TableLogSubscriber(env.db, {
      schema: env.schema,
      heartbeatIntervalMs: 10_000,
      sessionTimeoutMs: 30_000,
      pollIntervalMs: 60_000,
    });
    const records: IncomingRecord[] = [];
    const sub = await subscriber.subscribe({ groupId: 'g-wake', topics: ['wake'], onRecords: (b) => records.push(...b.records) });
    open.push(sub);
    assert.equal(sub.assignment().length, 2, 'subscribe resolves with the first share of partitions taken');
    await publish('wake', 4, 'w');
    await waitFor(() => records.length === 4, { what: 'records woken by NOTIFY', timeoutMs: 2_500 });
  });

  test('batches respect the record and byte limits, and an oversized record still goes out alone', async () => {
    await admin.createTopic('limits', 1);
    const values = [...Array.from({ length: 7 }, (_, i) => Buffer.alloc(100, i)), Buffer.alloc(1000, 9), Buffer.alloc(100, 10)];
    assert.ok((await publisher.publish(values.map((value) => ({ topic: 'limits', key: 'k', value, headers: {} })))).every((o) => o.ok));
    const sizes = async (limits: { maxBatchRecords?: number; maxBatchBytes?: number }) => {
      const subscriber = new TableLogSubscriber(env.db, { schema: env.schema, ...FAST_GROUP, ...limits });
      const batches: IncomingRecord[][] = [];
      const sub = await subscriber.subscribe({
        groupId: `g-limits-${Object.keys(limits)}`,
        topics: ['limits'],
        onRecords: (b) => batches.push(b.records),
      });
      open.push(sub);
      await waitFor(() => batches.flat().length === values.length, { what: 'all records' });
      await sub.close();
      assert.deepEqual(
        batches.flat().map((r) => r.offset),
        values.map((_, i) => BigInt(i)),
      );
      return batches.map((b) => b.length);
    };
    assert.deepEqual(await sizes({ maxBatchRecords: 3 }), [3, 3, 3]);
    // 250 bytes: two 100-byte records per batch; the 1000-byte record goes alone rather than never.
    assert.deepEqual(await sizes({ maxBatchBytes: 250 }), [2, 2, 2, 1, 1, 1]);
  });

  test('commit refuses offsets past the end and partitions it does not own', async () => {
    await admin.createTopic('bounds', 1);
    await admin.createTopic('other', 1);
    await publish('bounds', 2, 'b');
    const a = await member('g-bounds', 'bounds');
    await waitFor(() => a.records.length === 2, { what: 'records' });
    await assert.rejects(a.sub.commit([{ topic: 'bounds', partition: 0, offset: 3n }]), { code: 'ZL_INVALID_OFFSET' });
    await assert.rejects(a.sub.commit([{ topic: 'bounds', partition: 0, offset: -1n }]), { code: 'ZL_INVALID_OFFSET' });
    await assert.rejects(a.sub.commit([{ topic: 'other', partition: 0, offset: 0n }]), { code: 'ZL_COMMIT_FENCED' });
    assert.deepEqual(await a.sub.lag(), [{ topic: 'bounds', partition: 0, lag: 2n }]);
    await a.sub.commit([{ topic: 'bounds', partition: 0, offset: 2n }]);
    await a.sub.commit([]);
    assert.deepEqual(await a.sub.lag(), [{ topic: 'bounds', partition: 0, lag: 0n }]);
    assert.deepEqual(
      (await admin.lag('g-bounds')).map((l) => [l.partition, l.committed, l.lag]),
      [[0, 2n, 0n]],
    );
  });
});
