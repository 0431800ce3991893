import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TableLogAdmin } from '../../src/adapters/table-log/table-log-admin.ts';
import { GroupMembership } from '../../src/adapters/table-log/table-log-group.ts';
import { partitionFor } from '../../src/core/partition-for.ts';
import { TableLogPublisher } from '../../src/adapters/table-log/table-log-publisher.ts';
import { tableLogChannel, tableLogSql } from '../../src/adapters/table-log/table-log-sql.ts';
import { freshSchema } from '../helpers/pg.ts';

describe('table log admin and retention on Postgres', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let admin: TableLogAdmin;
  let publisher: TableLogPublisher;
  before(async () => {
    env = await freshSchema('zltla');
    admin = new TableLogAdmin(env.db, { schema: env.schema });
    publisher = new TableLogPublisher(env.db, { schema: env.schema });
  });
  after(async () => {
    await env.cleanup();
  });

  /** Commits offsets for a group as its owner would, through the fenced path. */
  const commitAs = async (groupId: string, topic: string, offsets: Array<[number, bigint]>) => {
    const m = new GroupMembership({
      db: env.db,
      sql: tableLogSql(env.schema),
      channel: tableLogChannel(env.schema),
      groupId,
      memberId: `${groupId}-m`,
      topics: [topic],
      sessionMs: 60_000,
    });
    await m.join();
    const claimed = await m.claim(offsets.map(([partition]) => ({ topic, partition })));
    const results = await m.commit(offsets.map(([partition, offset]) => ({ ...claimed.find((c) => c.partition === partition)!, offset })));
    assert.ok(results.every((r) => r.status === 'committed'));
    await m.release(claimed);
    await m.leave();
  };

  /** One key per partition, so a test knows which partition each record goes to. */
  const keyFor = (partition: number, partitions: number) => {
    for (let i = 0; ; i++) if (partitionFor(`key-${i}`, partitions) === partition) return `key-${i}`;
  };

  test('createTopic is idempotent for the same count, refuses another, and partitions only grow', async () => {
    assert.deepEqual(await admin.createTopic('t-admin', 3), { created: true });
    assert.deepEqual(await admin.createTopic('t-admin', 3), { created: false });
    await assert.rejects(admin.createTopic('t-admin', 4), { code: 'ZL_TOPIC_EXISTS' });
    await assert.rejects(admin.createTopic('bad topic', 1), { code: 'ZL_INVALID_TOPIC' });
    await assert.rejects(admin.createTopic('t-zero', 0), { code: 'ZL_INVALID_CONFIG' });
    await admin.addPartitions('t-admin', 5);
    await assert.rejects(admin.addPartitions('t-admin', 2), { code: 'ZL_INVALID_CONFIG' });
    await assert.rejects(admin.addPartitions('t-none', 2), { code: 'ZL_INVALID_CONFIG' });
    assert.deepEqual(
      (await admin.listTopics()).filter((t) => t.topic === 't-admin'),
      [{ topic: 't-admin', partitions: 5 }],
    );
    assert.equal((await admin.endOffsets('t-admin')).length, 5);
    const [outcome] = await publisher.publish([{ topic: 't-admin', key: keyFor(4, 5), value: Buffer.from('x'), headers: {} }]);
    assert.ok(outcome?.ok && outcome.partition === 4, 'the new partitions take records');
  });

  test('retention keeps what a group that joined but has not committed yet has still to read', async () => {
    // Only groups with a committed offset counted: a new group reading from the earliest record (the default)
    // had the records below the others' commits deleted under it, and its fetch moved over the hole.
    await admin.createTopic('t-ret-new', 1);
    const outcomes = await publisher.publish(
      Array.from({ length: 6 }, (_, i) => ({ topic: 't-ret-new', key: 'k', value: Buffer.from(`${i}`), headers: {} })),
    );
    assert.ok(outcomes.every((o) => o.ok));
    await commitAs('g-old', 't-ret-new', [[0, 6n]]);
    const fresh = new GroupMembership({
      db: env.db,
      sql: tableLogSql(env.schema),
      channel: tableLogChannel(env.schema),
      groupId: 'g-new',
      memberId: 'g-new-m',
      topics: ['t-ret-new'],
      sessionMs: 60_000,
    });
    await fresh.join();
    await fresh.claim([{ topic: 't-ret-new', partition: 0 }]);
    try {
      assert.equal(await admin.deleteRetained({ minAgeMs: 0, topic: 't-ret-new' }), 0, 'g-new has read nothing yet');
    } finally {
      await fresh.leave();
    }
  });

  test('retention deletes in batches only what every group committed past and is old enough', async () => {
    await admin.createTopic('t-ret', 2);
    const k0 = keyFor(0, 2);
    const k1 = keyFor(1, 2);
    const outcomes = await publisher.publish(
      Array.from({ length: 20 }, (_, i) => ({ topic: 't-ret', key: i % 2 === 0 ? k0 : k1, value: Buffer.from(`${i}`), headers: {} })),
    );
    assert.ok(outcomes.every((o) => o.ok));
    assert.equal(await admin.deleteRetained({ minAgeMs: 0, topic: 't-ret' }), 0, 'no group has read anything: keep all');

    await commitAs('g1', 't-ret', [
      [0, 6n],
      [1, 3n],
    ]);
    await commitAs('g2', 't-ret', [[0, 4n]]);
    assert.equal(await admin.deleteRetained({ minAgeMs: 3_600_000, topic: 't-ret' }), 0, 'records younger than the age stay');
    // g2 never committed partition 1, so partition 1 is held entirely; partition 0 goes below min(6, 4).
    assert.equal(await admin.deleteRetained({ minAgeMs: 0, batchSize: 3, topic: 't-ret' }), 4);
    assert.deepEqual(
      (await admin.endOffsets('t-ret')).map((e) => [e.partition, e.low, e.high]),
      [
        [0, 4n, 10n],
        [1, 0n, 10n],
      ],
    );
    assert.deepEqual(
      (await admin.lag('g2', 't-ret')).map((l) => [l.partition, l.committed, l.lag]),
      [
        [0, 4n, 6n],
        [1, undefined, 10n],
      ],
    );

    await admin.deleteGroup('g2');
    assert.deepEqual(await admin.committedOffsets('g2'), []);
    assert.equal(await admin.deleteRetained({ minAgeMs: 0, batchSize: 2 }), 5);
    assert.deepEqual(
      (await admin.endOffsets('t-ret')).map((e) => [e.partition, e.low, e.high]),
      [
        [0, 6n, 10n],
        [1, 3n, 10n],
      ],
    );
    const next = await publisher.publish([{ topic: 't-ret', key: k0, value: Buffer.from('after'), headers: {} }]);
    assert.ok(next[0]?.ok && next[0].offset === 10n, 'offsets never restart after deletion');
    assert.deepEqual(
      (await admin.committedOffsets('g1', 't-ret')).map((c) => [c.partition, c.offset]),
      [
        [0, 6n],
        [1, 3n],
      ],
    );
  });
});
