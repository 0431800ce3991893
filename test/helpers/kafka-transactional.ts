import assert from 'node:assert/strict';
import type { Admin } from '@platformatic/kafka';
import { kafka } from '../../src/adapters/kafka/kafka-driver.ts';
import { KafkaPublisher } from '../../src/adapters/kafka/kafka-publisher.ts';
import type { Transform } from '../../src/adapters/kafka/kafka-transactional-processor.ts';
import { BROKERS, createTopics, readTopic, topicFamily, uniqueId, zlRecord } from './consumer-fixtures.ts';
import { waitFor } from './wait-for.ts';

/** Input topic (with its retry/dlq family) and output topic; `n` orders on the input, numbered 1..n, keyed by `key(i)`. */
export async function inputAndOutput(prefix: string, partitions: number, n: number, key: (i: number) => string) {
  const input = uniqueId(`zl-eos-${prefix}-in`);
  const output = uniqueId(`zl-eos-${prefix}-out`);
  await createTopics([...topicFamily(input), output], partitions);
  const publisher = new KafkaPublisher({ brokers: BROKERS });
  try {
    const records = Array.from({ length: n }, (_, i) => zlRecord({ topic: input, key: key(i), type: 'order', payload: { n: i + 1 } }));
    for (const o of await publisher.publish(records)) assert.ok(o.ok);
  } finally {
    await publisher.close();
  }
  return { input, output, groupId: uniqueId('g') };
}

/** One output per input, carrying its number. */
export function toOutput(output: string): Transform {
  return ({ record, payload }) => [{ topic: output, key: record.key, value: Buffer.from(JSON.stringify(payload)), headers: {} }];
}

/** Once the group committed all `n` inputs (their outputs commit with them), each input has exactly one output. */
export async function assertOneOutputEach(admin: Admin, groupId: string, output: string, n: number): Promise<void> {
  await waitFor(
    async () => {
      const [group] = await admin.listConsumerGroupOffsets({ groups: [groupId], requireStable: true });
      const done = (group?.topics ?? []).flatMap((t) => t.partitions).reduce((sum, p) => sum + Math.max(0, Number(p.committedOffset)), 0);
      return done === n;
    },
    { what: `all ${n} inputs committed`, timeoutMs: 60_000 },
  );
  // One more than expected, briefly: a second output of any input would arrive with the others.
  const outputs = await readTopic(output, n + 1, 3_000);
  const ns = outputs.map((r) => (JSON.parse(r.value.toString()) as { n: number }).n).sort((a, b) => a - b);
  assert.deepEqual(
    ns,
    Array.from({ length: n }, (_, i) => i + 1),
    'each input has exactly one committed output',
  );
}

export interface CoordinatorTransaction {
  transactionState: string;
  transactionTimeoutMs: number;
  transactionStartTimeMs: bigint;
  producerId: bigint;
  producerEpoch: number;
}

/**
 * The transaction coordinator's view of a transactional id (DescribeTransactions, which the client's Admin
 * does not offer). Asks each bootstrap broker in turn: the one that is not the coordinator refuses.
 */
export async function describeTransaction(transactionalId: string, brokers = BROKERS): Promise<CoordinatorTransaction> {
  let last: unknown;
  for (const broker of brokers) {
    const [host, port] = broker.split(':');
    const connection = new kafka.Connection('zl-test-describe-transactions');
    try {
      await connection.connect(host as string, Number(port ?? 9092));
      const response = await kafka.describeTransactionsV0.api.async(connection, [transactionalId]);
      const [state] = response.transactionStates;
      if (state) return state;
    } catch (error) {
      last = error;
    } finally {
      await connection.close().catch(() => {});
    }
  }
  throw new Error(`no broker described transactional id ${transactionalId}`, { cause: last });
}
