import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createAdmin } from '../../src/adapters/kafka/kafka-admin.ts';
import { KafkaSubscriber } from '../../src/adapters/kafka/kafka-subscriber.ts';
import { KafkaTransactionalProcessor, type TransformInput } from '../../src/adapters/kafka/kafka-transactional-processor.ts';
import type { ZerolossError } from '../../src/core/errors.ts';
import { BROKERS, uniqueId } from '../helpers/consumer-fixtures.ts';
import { assertOneOutputEach, describeTransaction, inputAndOutput, toOutput } from '../helpers/kafka-transactional.ts';
import { waitFor } from '../helpers/wait-for.ts';

/** A promise the test settles by hand: a transform parked on it holds its transaction open. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open: () => void = () => {};
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}

const n = (input: TransformInput) => (input.payload as { n: number }).n;

/** @platformatic/kafka's default request `timeout`, which it also sent as InitProducerId's transaction timeout. */
const CLIENT_TIMEOUT_MS = 5_000;
/** How often the coordinator looks for transactions past their timeout (transaction.abort.timed.out.transaction.cleanup.interval.ms default). */
const ABORT_CHECK_MS = 10_000;

/**
 * The client sent its 5 s request timeout as the transaction timeout, so the coordinator aborted any
 * transaction open longer than that: a transform slower than ~5 s per batch could never commit. Here record
 * 2's transform waits while record 1's output is already in the open transaction, until the coordinator
 * would have aborted a 5 s transaction at its next check.
 */
test('Kafka transactions: a transaction open longer than the client request timeout commits', { timeout: 60_000 }, async () => {
  const { input, output, groupId } = await inputAndOutput('slow', 1, 3, () => 'k');
  const transactionalId = uniqueId('tx');
  const slow = gate();
  let holding = false;
  const transform = toOutput(output);
  const processor = new KafkaTransactionalProcessor({
    config: { brokers: BROKERS, groupId, topics: [input], transactionalId, maxBatch: 3, flushEvery: 1 },
    transform: async (record) => {
      if (n(record) === 2 && !holding) {
        holding = true;
        await slow.wait;
      }
      return transform(record);
    },
  });
  const aborted: string[] = [];
  processor.on('aborted', (a) => aborted.push(a.error));
  const admin = createAdmin(BROKERS);
  await processor.start();
  try {
    await waitFor(() => holding, { what: 'the transform of record 2 inside the transaction', timeoutMs: 30_000 });
    const seen = await waitFor(
      async () => {
        const t = await describeTransaction(transactionalId);
        const open = Date.now() - Number(t.transactionStartTimeMs);
        return t.transactionState !== 'Ongoing' || open > CLIENT_TIMEOUT_MS + ABORT_CHECK_MS + 500 ? t : undefined;
      },
      { what: 'the transaction aborted, or open past 5 s and a coordinator check', timeoutMs: 30_000, intervalMs: 250 },
    );
    assert.equal(seen.transactionState, 'Ongoing', 'the coordinator kept the transaction open');
    assert.equal(seen.transactionTimeoutMs, 60_000, 'the transaction timeout the coordinator was given');
    slow.open();
    await assertOneOutputEach(admin, groupId, output, 3);
    assert.deepEqual(aborted, [], 'no transaction was aborted');
  } finally {
    slow.open();
    await processor.stop();
    await admin.close();
  }
});

/**
 * A second processor given the same `transactionalId` (a restarted instance while the old one still runs)
 * takes the id over: its InitProducerId aborts the first one's open transaction and bumps the epoch. The
 * first must then stop with ZL_PRODUCER_FENCED rather than take the id back, which would fence the second
 * in turn. Here the first holds its first transaction open until the second has committed on its partition.
 */
test('Kafka transactions: a second processor with the same transactionalId stops the first with ZL_PRODUCER_FENCED', {
  timeout: 60_000,
}, async () => {
  const { input, output, groupId } = await inputAndOutput('fenced', 2, 20, (i) => `k${i}`);
  const config = { brokers: BROKERS, groupId, topics: [input], transactionalId: uniqueId('tx'), flushEvery: 1, revokeTimeoutMs: 500 };
  const subscriber = () =>
    new KafkaSubscriber({
      brokers: BROKERS,
      maxWaitMs: 100,
      sessionTimeoutMs: 6_000,
      heartbeatIntervalMs: 500,
      rebalanceTimeoutMs: 10_000,
    });
  const transform = toOutput(output);
  const held = gate();
  let calls = 0;
  const first = new KafkaTransactionalProcessor({
    config,
    subscriber: subscriber(),
    // The second call waits with the first call's output sent: the transaction is open at the coordinator.
    transform: async (record) => {
      calls++;
      if (calls === 2) await held.wait;
      return transform(record);
    },
  });
  const second = new KafkaTransactionalProcessor({ config, subscriber: subscriber(), transform });
  const errors = { first: [] as Error[], second: [] as Error[] };
  first.on('error', (e) => errors.first.push(e));
  second.on('error', (e) => errors.second.push(e));
  let secondCommitted = 0;
  second.on('committed', (c) => {
    secondCommitted += c.records;
  });
  const code = (e: Error) => (e as ZerolossError).code;
  const admin = createAdmin(BROKERS);
  try {
    await first.start();
    await waitFor(() => calls === 2, { what: 'the first processor inside its first transaction', timeoutMs: 30_000 });
    await second.start();
    await waitFor(() => secondCommitted > 0, { what: 'the second processor committing on its partition', timeoutMs: 30_000 });
    held.open();
    await waitFor(() => errors.first.some((e) => code(e) === 'ZL_PRODUCER_FENCED'), {
      what: 'the first processor fenced',
      timeoutMs: 30_000,
    });
    await assertOneOutputEach(admin, groupId, output, 20);
    const [group] = (await admin.describeGroups({ groups: [groupId] })).values();
    assert.equal(group?.members.size, 1, 'the first processor left the group');
    assert.deepEqual(
      errors.second.map(code).filter((c) => c === 'ZL_PRODUCER_FENCED'),
      [],
      'the second was never fenced',
    );
  } finally {
    held.open();
    await first.stop();
    await second.stop();
    await admin.close();
  }
});

/**
 * The coordinator answers PRODUCER_FENCED also to the abort of a transaction it aborted itself on timeout
 * (the send before it meets INVALID_PRODUCER_EPOCH). That is not a newer producer: the processor must
 * replace its producer and read the records again, not stop. Here record 2's transform waits, with record
 * 1's output in the transaction, until the coordinator aborted it (timeout 1 s, checked every 10 s).
 */
test('Kafka transactions: a transaction the coordinator aborted on timeout is read again, not taken for fencing', {
  timeout: 60_000,
}, async () => {
  const { input, output, groupId } = await inputAndOutput('timedout', 1, 3, () => 'k');
  const transactionalId = uniqueId('tx');
  const slow = gate();
  let holding = false;
  const transform = toOutput(output);
  const processor = new KafkaTransactionalProcessor({
    config: { brokers: BROKERS, groupId, topics: [input], transactionalId, flushEvery: 1, transactionTimeoutMs: 1_000 },
    transform: async (record) => {
      if (n(record) === 2 && !holding) {
        holding = true;
        await slow.wait;
      }
      return transform(record);
    },
  });
  const errors: Error[] = [];
  processor.on('error', (e) => errors.push(e));
  const admin = createAdmin(BROKERS);
  await processor.start();
  try {
    await waitFor(() => holding, { what: 'the transform of record 2 inside the transaction', timeoutMs: 30_000 });
    await waitFor(async () => (await describeTransaction(transactionalId)).transactionState.endsWith('Abort'), {
      what: 'the coordinator aborting the transaction on timeout',
      timeoutMs: ABORT_CHECK_MS + 10_000,
      intervalMs: 250,
    });
    slow.open();
    await assertOneOutputEach(admin, groupId, output, 3);
    assert.ok(errors.length > 0, 'the timed-out transaction failed');
    assert.deepEqual(
      errors.map((e) => (e as ZerolossError).code).filter((c) => c === 'ZL_PRODUCER_FENCED'),
      [],
      'not taken for fencing',
    );
  } finally {
    slow.open();
    await processor.stop();
    await admin.close();
  }
});
