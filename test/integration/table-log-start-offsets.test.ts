import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TableLogAdmin } from '../../src/adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../../src/adapters/table-log/table-log-publisher.ts';
import { TableLogSubscriber } from '../../src/adapters/table-log/table-log-subscriber.ts';
import type { IncomingRecord } from '../../src/core/envelope.ts';
import { partitionFor } from '../../src/core/partition-for.ts';
import { freshSchema } from '../helpers/pg.ts';
import { FAST_GROUP } from '../helpers/table-log.ts';
import { waitFor } from '../helpers/wait-for.ts';

let env: Awaited<ReturnType<typeof freshSchema>>;
before(async () => {
  env = await freshSchema('zltso');
});
after(async () => {
  await env.cleanup();
});

test('table log: startOffsets places each partition it answers for; the others start as usual', async () => {
  await new TableLogAdmin(env.db, { schema: env.schema }).createTopic('so', 2);
  // Ten records on each partition, keys chosen by where they land.
  const keys = Array.from({ length: 200 }, (_, i) => `k${i}`);
  const on = (p: number) => keys.filter((k) => partitionFor(k, 2) === p).slice(0, 10);
  const outcomes = await new TableLogPublisher(env.db, { schema: env.schema }).publish(
    [...on(0), ...on(1)].map((key) => ({ topic: 'so', key, value: Buffer.from(key), headers: {} })),
  );
  assert.ok(outcomes.every((o) => o.ok));

  const asked: Array<{ topic: string; partition: number }> = [];
  const records: IncomingRecord[] = [];
  const subscriber = new TableLogSubscriber(env.db, { schema: env.schema, ...FAST_GROUP });
  const subscription = await subscriber.subscribe({
    groupId: 'g-start',
    topics: ['so'],
    onRecords: (batch) => records.push(...batch.records),
    startOffsets: async (partitions) => {
      asked.push(...partitions);
      return [{ topic: 'so', partition: 0, offset: 7n }];
    },
  });
  try {
    await waitFor(() => records.length === 3 + 10, { what: 'partition 0 from offset 7 and all of partition 1' });
    const offsets = (p: number) => records.filter((r) => r.partition === p).map((r) => Number(r.offset));
    assert.deepEqual(offsets(0), [7, 8, 9], 'partition 0 starts at the offset startOffsets gave');
    assert.deepEqual(offsets(1), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'partition 1, not answered for, starts at startFrom');
    assert.deepEqual(
      asked.sort((a, b) => a.partition - b.partition),
      [
        { topic: 'so', partition: 0 },
        { topic: 'so', partition: 1 },
      ],
    );
  } finally {
    await subscription.close();
  }
});

test('table log: a claim whose start positions could not be read does not keep its partitions from the next member', async () => {
  // The claim commits on its own; reading where to start comes after it. When that read failed, the
  // partitions stayed the member's in the database but not in its subscription: once another member
  // joined and they became its share, nobody read them, and the newcomer could not claim them while
  // their owner lived.
  await new TableLogAdmin(env.db, { schema: env.schema }).createTopic('so2', 2);
  let fail: (() => void) | undefined;
  const failing = new Promise<void>((resolve) => {
    fail = resolve;
  });
  let asked = 0;
  const member = (extra: Partial<Parameters<TableLogSubscriber['subscribe']>[0]> = {}) =>
    new TableLogSubscriber(env.db, { schema: env.schema, ...FAST_GROUP }).subscribe({
      groupId: 'g-stray',
      topics: ['so2'],
      onRecords: () => {},
      onError: () => {},
      ...extra,
    });
  const a = await member({
    startOffsets: async () => {
      // The second read (A taking back the partition B left) fails, once C has joined: a lost connection, say.
      if (++asked === 2) {
        await failing;
        throw new Error('connection lost while reading the start positions (test)');
      }
      return [];
    },
  });
  const b = await member();
  const assignedToC: number[] = [];
  let c: Awaited<ReturnType<typeof member>> | undefined;
  try {
    await waitFor(() => b.assignment().length === 1, { what: 'B handed one partition' });
    await b.close();
    await waitFor(() => asked === 2, { what: 'A taking back the partition B left' });
    c = await member({ onAssign: (partitions) => assignedToC.push(...partitions.map((p) => p.partition)) });
    fail?.();
    await waitFor(() => assignedToC.length > 0, { what: 'C assigned its share', timeoutMs: 10_000 });
  } finally {
    fail?.();
    await c?.close();
    await a.close();
  }
});
