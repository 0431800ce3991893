import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { createAdmin } from '../../../src/adapters/kafka/kafka-admin.ts';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import type { ConsumerEvents } from '../../../src/consumer/consumer-events.ts';
import { recordSequenceAlarms } from '../../../src/operations/sequence-alarms.ts';
import type { PartitionStatus, Status } from '../../../src/operations/status.ts';

import { uniqueId, zlRecord } from '../../helpers/consumer-fixtures.ts';
import { KAFKA_BROKERS, createTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { zerolossJson } from '../../helpers/ops-cli.ts';
import { PG_URL, freshSchema, inTransaction } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';

/** Acceptance 4 (O1, O4): `status --json` reports per-partition lag equal to what the Kafka admin API says. */
describe('status', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  before(async () => {
    env = await freshSchema('zlstat');
  });
  after(async () => {
    await env.cleanup();
  });

  test('lag per partition matches the Kafka admin API; outbox backlog, parked rows, throughput and alarms', async () => {
    const topic = uniqueTopic('zl-status');
    await createTopic(topic, 3);
    const publisher = new KafkaPublisher({ brokers: KAFKA_BROKERS });
    try {
      const records = Array.from({ length: 40 }, (_, i) => zlRecord({ topic, key: `k${i}`, type: 'credit', payload: { i } }));
      for (const o of await publisher.publish(records)) assert.ok(o.ok);
    } finally {
      await publisher.close();
    }
    const group = uniqueId('g-status');
    const admin = createAdmin(KAFKA_BROKERS);
    try {
      // The group committed part of partitions 0 and 1, nothing on 2.
      await admin.alterConsumerGroupOffsets({
        groupId: group,
        topics: [
          {
            name: topic,
            partitionOffsets: [
              { partition: 0, offset: 2n },
              { partition: 1, offset: 1n },
            ],
          },
        ],
      });

      // Outbox: two pending rows, one of them parked by hand; an applied message of the group; an alarm.
      const outbox = testOutbox({ schema: env.schema });
      const ids = await inTransaction(env.pool, async (tx) => [
        (await outbox.enqueue(tx, { topic, key: 'a', type: 'credit', payload: 1 })).id,
        (await outbox.enqueue(tx, { topic, key: 'b', type: 'credit', payload: 2 })).id,
      ]);
      await env.pool.query(`update "${env.schema}".outbox set state = 3, last_error = 'rejected for good' where message_id = $1`, [ids[1]]);
      await env.pool.query(
        `insert into "${env.schema}".inbox (consumer_group, idempotency_key, message_id, topic, msg_partition, msg_offset) values ($1, 'x', 'x', $2, 0, 1)`,
        [group, topic],
      );
      const fake = Object.assign(new EventEmitter<ConsumerEvents>(), { config: { groupId: group } });
      const stop = recordSequenceAlarms(fake, new PostgresOperationsStore(env.db, { schema: env.schema }));
      fake.emit('sequence-gap', { kind: 'gap', topic, partition: 0, producerId: 'p', key: 'k', expected: 3, received: 5, missing: 2 });
      stop();
      await waitFor(async () => (await env.pool.query(`select 1 from "${env.schema}".sequence_alarm`)).rows.length === 1);

      const { code, json } = await zerolossJson<Status>([
        'status',
        '--pg',
        PG_URL,
        '--schema',
        env.schema,
        '--kafka',
        KAFKA_BROKERS.join(','),
        '--group',
        group,
        '--stuck-after',
        '1ms',
      ]);
      assert.equal(code, 1, 'parked and stuck rows make the exit status 1');

      // What Kafka itself says.
      const [ends] = await admin.listOffsets({
        topics: [{ name: topic, partitions: [0, 1, 2].map((partitionIndex) => ({ partitionIndex, timestamp: -1n })) }],
      });
      const [commits] = await admin.listConsumerGroupOffsets({ groups: [group] });
      const committed = new Map(
        commits?.topics.find((t) => t.name === topic)?.partitions.map((p) => [p.partitionIndex, p.committedOffset]),
      );
      const g = json.groups.find((x) => x.group === group);
      assert.ok(g, 'the group is reported');
      assert.equal(g.partitions.length, 3);
      let total = 0n;
      for (const p of ends?.partitions ?? []) {
        const mine: PartitionStatus | undefined = g.partitions.find((x) => x.topic === topic && x.partition === p.partitionIndex);
        assert.ok(mine);
        assert.equal(mine.end, p.offset.toString(), `end offset of partition ${p.partitionIndex}`);
        const c = committed.get(p.partitionIndex);
        if (c === undefined || c < 0n) {
          assert.equal(mine.committed, null);
          assert.equal(mine.lag, null, 'no committed offset, no lag figure');
        } else {
          assert.equal(mine.committed, c.toString());
          assert.equal(mine.lag, (p.offset - c).toString(), `lag of partition ${p.partitionIndex} = end - committed`);
          total += p.offset - c;
        }
      }
      assert.equal(g.lag, total.toString());
      assert.ok(g.partitions.find((p) => p.partition === 0)!.appliedPerSecond > 0, 'throughput from the inbox');

      assert.equal(json.outbox.pending, 1);
      assert.equal(json.outbox.parked, 1);
      assert.equal(json.outbox.stuck, 1);
      assert.ok(json.outbox.oldestUnsentAgeMs >= 0);
      assert.deepEqual(
        json.parked.map((p) => [p.messageId, p.lastError]),
        [[ids[1], 'rejected for good']],
      );
      assert.equal(json.alarms.length, 1);
      assert.equal(json.alarms[0]?.kind, 'gap');
      assert.equal(json.alarms[0]?.missing, 2);
    } finally {
      await admin.close();
    }
  });
});
