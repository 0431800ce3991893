import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import { kafka } from '../../../src/adapters/kafka/kafka-transport.ts';
import { postgres } from '../../../src/adapters/postgres/postgres.ts';
import { rabbitmq } from '../../../src/adapters/rabbitmq/rabbitmq-transport.ts';
import { rabbitNames } from '../../../src/adapters/rabbitmq/rabbitmq-names.ts';
import { redisStreams } from '../../../src/adapters/redis-streams/redis-streams-transport.ts';
import { tableLog } from '../../../src/adapters/table-log/table-log-transport.ts';
import { createConsumer } from '../../../src/entry/create-consumer.ts';
import type { Store, Transport } from '../../../src/ports/backends.ts';
import { createEffectTable, insertEffect, uniqueId, zlRecord } from '../../helpers/consumer-fixtures.ts';
import { KAFKA_BROKERS } from '../../helpers/kafka.ts';
import { zeroloss } from '../../helpers/ops-cli.ts';
import { freshSchema, PG_URL } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const REDIS_URL = process.env.ZL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const RABBITMQ_URL = process.env.ZL_TEST_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const PARTITIONS = 2;
const MESSAGES = 20;

interface Side {
  name: string;
  /** The broker flags of the CLI. */
  flags: string[];
  open(store: Store): Transport;
  /** Whether to start the group again afterwards (one transport shows it; each join costs seconds). */
  restart?: boolean;
  /** What the broker still holds for the group on the topic (empty once deleted). */
  committed(groupId: string, topic: string): Promise<string[]>;
}

const sides: Side[] = [
  {
    name: 'Kafka',
    flags: ['--kafka', KAFKA_BROKERS.join(',')],
    open: () => kafka({ brokers: KAFKA_BROKERS }),
    async committed(groupId, topic) {
      const t = kafka({ brokers: KAFKA_BROKERS });
      try {
        const [listed] = await t.inspector.admin.listConsumerGroupOffsets({ groups: [groupId] });
        const parts = listed?.topics.find((x) => x.name === topic)?.partitions ?? [];
        return parts.filter((p) => p.committedOffset >= 0n).map((p) => `${topic}[${p.partitionIndex}]`);
      } finally {
        await t.close();
      }
    },
  },
  {
    name: 'Redis Streams',
    flags: ['--redis-streams', REDIS_URL],
    open: () => redisStreams(REDIS_URL),
    async committed(groupId, topic) {
      const redis = new Redis(REDIS_URL);
      try {
        const found: string[] = [];
        for (let p = 0; p < PARTITIONS; p++) {
          const groups = (await redis.call('XINFO', 'GROUPS', `zl:stream:${topic}:${p}`)) as unknown[][];
          if (groups.some((g) => g[1] === groupId)) found.push(`${topic}[${p}]`);
        }
        return found;
      } finally {
        redis.disconnect();
      }
    },
  },
  {
    name: 'RabbitMQ',
    flags: ['--rabbitmq', RABBITMQ_URL],
    open: () => rabbitmq(RABBITMQ_URL),
    restart: true,
    async committed(groupId, topic) {
      const conn = await amqp.connect(RABBITMQ_URL);
      try {
        const found: string[] = [];
        for (let p = 0; p < PARTITIONS; p++) {
          const ch = await conn.createChannel();
          ch.on('error', () => {});
          try {
            await ch.checkQueue(rabbitNames.offset(groupId, topic, p));
            found.push(`${topic}[${p}]`);
          } catch {
            // not found: the channel is closed by the broker
          }
        }
        return found;
      } finally {
        await conn.close();
      }
    },
  },
];

for (const side of sides) {
  describe(`groups delete on ${side.name}`, () => {
    let env: Awaited<ReturnType<typeof freshSchema>>;
    let store: Store;
    let transport: Transport;
    const topic = uniqueId('zl-gd');
    before(async () => {
      env = await freshSchema('zlgd');
      await createEffectTable(env.db, env.schema);
      store = postgres(PG_URL, { schema: env.schema });
      transport = side.open(store);
      await transport.ensureTopic(topic, PARTITIONS);
    });
    after(async () => {
      await (transport as Transport & { topicAdmin?: { deleteTopic(t: string): Promise<void> } }).topicAdmin
        ?.deleteTopic(topic)
        .catch(() => {});
      await transport.close();
      await store.close();
      await env.cleanup();
    });

    test(`refused while a member lives; then the broker positions go${side.restart ? ', and a restart applies nothing twice' : ''}`, async () => {
      const groupId = uniqueId('g');
      const start = () => {
        const consumer = createConsumer({ store, transport, groupId, topics: [topic], commitIntervalMs: 50 });
        consumer.handle<{ n: number }>('credit', async (m, ctx) =>
          insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }),
        );
        return consumer;
      };
      const records = Array.from({ length: MESSAGES }, (_, n) => zlRecord({ topic, key: `k${n % 4}`, type: 'credit', payload: { n } }));
      const outcomes = await transport.publisher.publish(records);
      assert.ok(outcomes.every((o) => o.ok));

      const first = start();
      const duplicates: string[] = [];
      await first.start();
      const applied = async () => Number((await env.pool.query(`select count(*)::int as n from "${env.schema}".effect`)).rows[0].n);
      await waitFor(async () => (await applied()) === MESSAGES, { timeoutMs: 60_000, what: 'every record applied' });
      await waitFor(async () => (await side.committed(groupId, topic)).length > 0, { timeoutMs: 30_000, what: 'offsets committed' });

      const args = ['groups', 'delete', groupId, '--topic', topic, '--pg', PG_URL, '--schema', env.schema, ...side.flags];
      const refused = await zeroloss(args);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /ZL_GROUP_ACTIVE/);
      assert.ok((await side.committed(groupId, topic)).length > 0, 'a refused delete deletes nothing');

      await first.stop();
      const done = await waitFor(
        async () => {
          const r = await zeroloss([...args, '--reason', 'test', '--json']);
          return r.code === 0 ? r : undefined;
        },
        { timeoutMs: 30_000, what: 'the stopped group to be deletable' },
      );
      const result = JSON.parse(done.stdout) as { broker: string[] };
      assert.ok(result.broker.length > 0, done.stdout);
      assert.deepEqual(await side.committed(groupId, topic), []);
      const audit = await env.pool.query(`select actor, reason from "${env.schema}".operation_audit where action = 'group.delete'`);
      assert.equal(audit.rows.length, 1);
      assert.equal(audit.rows[0].reason, 'test');

      if (!side.restart) return;
      // Started again under the same name, the group reads everything again; the inbox applies nothing twice.
      const second = start();
      second.on('processed', (e) => {
        if (e.outcome === 'duplicate') duplicates.push(e.messageId);
      });
      await second.start();
      try {
        await waitFor(() => new Set(duplicates).size === MESSAGES, { timeoutMs: 60_000, what: 'every record read again as a duplicate' });
        assert.equal(await applied(), MESSAGES);
      } finally {
        await second.stop();
        // The second life committed again: leave nothing behind on the shared broker (once it has seen
        // the member leave).
        await waitFor(() => transport.groups?.deleteGroup(groupId, [topic]).then(() => true), {
          timeoutMs: 30_000,
          what: 'the restarted group to be deleted',
        });
      }
    });
  });
}

describe('groups delete on the table log', () => {
  test('deletes the group offsets and owners; refused while a member lives; stored offsets too', async () => {
    const env = await freshSchema('zlgd');
    const store = postgres(PG_URL, { schema: env.schema });
    const log = tableLog(store);
    try {
      await createEffectTable(env.db, env.schema);
      const topic = 'gd-orders';
      await log.ensureTopic(topic, PARTITIONS);
      await log.publisher.publish(Array.from({ length: 6 }, (_, n) => zlRecord({ topic, key: `k${n}`, type: 'credit', payload: { n } })));
      const groupId = 'g-done';
      const consumer = createConsumer({ store, transport: log, groupId, topics: [topic], commitIntervalMs: 50 });
      consumer.handle<{ n: number }>('credit', async (m, ctx) =>
        insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }),
      );
      await consumer.start();
      const offsets = async () =>
        Number(
          (await env.pool.query(`select count(*)::int as n from "${env.schema}".log_group_offset where group_id = $1`, [groupId])).rows[0]
            .n,
        );
      await waitFor(async () => (await offsets()) > 0, { timeoutMs: 30_000, what: 'offsets committed' });
      // A position stored with the effects (offsetStore: 'database') goes too.
      await env.pool.query(
        `insert into "${env.schema}".consumer_offset (consumer_group, topic, msg_partition, next_offset) values ($1, $2, 0, 3)`,
        [groupId, topic],
      );
      const args = ['groups', 'delete', groupId, '--topic', topic, '--pg', PG_URL, '--schema', env.schema, '--table-log'];
      const refused = await zeroloss(args);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /ZL_GROUP_ACTIVE/);
      await consumer.stop();
      const r = await zeroloss([...args, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const result = JSON.parse(r.stdout) as { broker: string[]; storedOffsets: unknown[] };
      assert.ok(result.broker.length > 0);
      assert.equal(result.storedOffsets.length, 1);
      assert.equal(await offsets(), 0);
      const stored = await env.pool.query(`select 1 from "${env.schema}".consumer_offset where consumer_group = $1`, [groupId]);
      assert.equal(stored.rows.length, 0);
    } finally {
      await store.close();
      await env.cleanup();
    }
  });

  test('bad input: no topic, no broker, no group', async () => {
    const env = await freshSchema('zlgd');
    try {
      const base = ['--pg', PG_URL, '--schema', env.schema];
      const noTopic = await zeroloss(['groups', 'delete', 'g', ...base, '--table-log']);
      assert.equal(noTopic.code, 2);
      assert.match(noTopic.stderr, /--topic/);
      const noBroker = await zeroloss(['groups', 'delete', 'g', '--topic', 't', ...base]);
      assert.equal(noBroker.code, 2);
      assert.match(noBroker.stderr, /name the broker/);
      const noGroup = await zeroloss(['groups', 'delete']);
      assert.equal(noGroup.code, 2);
      assert.match(noGroup.stdout, /Usage: zeroloss groups delete/);
    } finally {
      await env.cleanup();
    }
  });
});
