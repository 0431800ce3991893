import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redisGroupFixture } from '../helpers/redis-streams-fixture.ts';
import { waitFor } from '../helpers/wait-for.ts';

/**
 * A member whose lease another member took over (its renewals failed while it was cut off, or its process
 * stalled past the session) must not read the partition's new entries before it notices: an entry it reads
 * goes into its own pending list, which the new owner claimed once when it took over and never looks at
 * again, so the entry is stranded there, and the key's later entries, read by the new owner, overtake it.
 * Here the takeover is done by hand (the lease set to another member, whose claim sweeps the pending list)
 * while the member's renewal is still seconds away, and an entry is published right after.
 */
test('Redis Streams: a member whose lease was taken over reads nothing more; the new owner gets the next entry', {
  timeout: 60_000,
}, async () => {
  // Renewals far apart: the member would otherwise learn of the takeover from its next renewal.
  const { topic, group, keys, publisher, redis, subscriber, ...fixture } = await redisGroupFixture(1, {
    heartbeatIntervalMs: 5_000,
    sessionTimeoutMs: 10_000,
    pollIntervalMs: 200,
  });
  const delivered: string[] = [];
  const member = await subscriber.subscribe({
    groupId: group,
    topics: [topic],
    onRecords: (batch) => delivered.push(...batch.records.map((r) => r.value.toString())),
    onError: () => {},
  });
  const stream = keys.stream(topic, 0);
  try {
    await waitFor(() => member.assignment().length === 1, { what: 'the member to own the partition', timeoutMs: 10_000 });
    const [before] = await publisher.publish([{ topic, key: 'k', value: Buffer.from('before'), headers: {} }]);
    assert.ok(before?.ok);
    await waitFor(() => delivered.includes('before'), { what: 'the first entry to be delivered' });

    // The takeover: another member holds the lease and has swept the pending list.
    await redis.set(keys.lease(group, topic, 0), 'zz-other', 'PX', 60_000);
    await redis.call('XAUTOCLAIM', stream, group, 'zz-other', 0, '0-0');
    const [after] = await publisher.publish([{ topic, key: 'k', value: Buffer.from('after'), headers: {} }]);
    assert.ok(after?.ok);

    await waitFor(() => member.assignment().length === 0, { what: 'the member to give the partition up', timeoutMs: 15_000 });
    assert.ok(!delivered.includes('after'), 'the member delivered an entry of a partition it no longer held');
    const pendingOfMember = (await redis.call('XPENDING', stream, group, '-', '+', 10, member.memberId)) as unknown[];
    assert.equal(pendingOfMember.length, 0, 'nothing stranded in the old member’s pending list');
    const read = await redis.xreadgroup('GROUP', group, 'zz-other', 'COUNT', 10, 'STREAMS', stream, '>');
    const values = ((read?.[0]?.[1] ?? []) as Array<[string, string[]]>).map(([, fields]) => fields[fields.indexOf('v') + 1]);
    assert.deepEqual(values, ['after'], 'the new owner reads the entry');
  } finally {
    await member.close().catch(() => {});
    await redis.del(keys.lease(group, topic, 0));
    await fixture.close();
  }
});
