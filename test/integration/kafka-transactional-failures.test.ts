import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createAdmin } from '../../src/adapters/kafka/kafka-admin.ts';
import { kafka } from '../../src/adapters/kafka/kafka-driver.ts';
import { KafkaSubscriber } from '../../src/adapters/kafka/kafka-subscriber.ts';
import {
  KafkaTransactionalProcessor,
  type TransactionalProcessorConfig,
  type TransformInput,
} from '../../src/adapters/kafka/kafka-transactional-processor.ts';
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

/**
 * A processor whose transform parks record `at` once on a gate, the outputs of the records before it already
 * sent: its transaction stays open at the coordinator until the test opens the gate.
 */
function heldAt(at: number, output: string, config: TransactionalProcessorConfig) {
  const gated = gate();
  let holding = false;
  const transform = toOutput(output);
  const processor = new KafkaTransactionalProcessor({
    config,
    transform: async (record) => {
      if (n(record) === at && !holding) {
        holding = true;
        await gated.wait;
      }
      return transform(record);
    },
  });
  return { processor, open: gated.open, holding: () => holding };
}

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
  const slow = heldAt(2, output, { brokers: BROKERS, groupId, topics: [input], transactionalId, maxBatch: 3, flushEvery: 1 });
  const { processor } = slow;
  const aborted: string[] = [];
  processor.on('aborted', (a) => aborted.push(a.error));
  const admin = createAdmin(BROKERS);
  await processor.start();
  try {
    await waitFor(slow.holding, { what: 'the transform of record 2 inside the transaction', timeoutMs: 30_000 });
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
  const slow = heldAt(2, output, {
    brokers: BROKERS,
    groupId,
    topics: [input],
    transactionalId,
    flushEvery: 1,
    transactionTimeoutMs: 1_000,
  });
  const { processor } = slow;
  const errors: Error[] = [];
  processor.on('error', (e) => errors.push(e));
  const admin = createAdmin(BROKERS);
  await processor.start();
  try {
    await waitFor(slow.holding, { what: 'the transform of record 2 inside the transaction', timeoutMs: 30_000 });
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

/**
 * A transaction not settled after `stuckTransactionMs` is given up: the producer is replaced (its
 * InitProducerId aborts what the old one left open) and the records are read again. The give-up covers
 * the whole transaction, the transform included: here records 1-2's outputs are already in the
 * transaction when record 3's transform stops; it returns only once the replacement committed everything,
 * and what the given-up transaction then sends must not be committed.
 */
test('Kafka transactions: a transaction stuck past stuckTransactionMs is given up and every input is output once', {
  timeout: 60_000,
}, async () => {
  const { input, output, groupId } = await inputAndOutput('stuck', 1, 10, () => 'k');
  const transactionalId = uniqueId('tx');
  const stuck = heldAt(3, output, {
    brokers: BROKERS,
    groupId,
    topics: [input],
    transactionalId,
    flushEvery: 1,
    stuckTransactionMs: 2_000,
  });
  const { processor } = stuck;
  const aborted: string[] = [];
  processor.on('aborted', (a) => aborted.push(a.error));
  let committed = 0;
  processor.on('committed', (c) => {
    committed += c.records;
  });
  const admin = createAdmin(BROKERS);
  await processor.start();
  try {
    await waitFor(stuck.holding, { what: 'the transform of record 3 stuck', timeoutMs: 30_000 });
    const before = await describeTransaction(transactionalId);
    assert.equal(before.transactionState, 'Ongoing', 'records 1-2 sent in the stuck transaction');
    await waitFor(() => committed === 10, { what: 'all 10 inputs committed after the give-up', timeoutMs: 30_000 });
    assert.equal(aborted.length, 1, 'one transaction given up');
    assert.match(aborted[0] ?? '', /did not finish within 2000 ms/);
    const after = await describeTransaction(transactionalId);
    assert.ok(after.producerId !== before.producerId || after.producerEpoch > before.producerEpoch, 'a new producer epoch');
    stuck.open();
    await assertOneOutputEach(admin, groupId, output, 10);
  } finally {
    stuck.open();
    await processor.stop();
    await admin.close();
  }
});

/** EndTxn, the request that commits or aborts a transaction. */
const END_TXN = 26;

/**
 * Loses the next request of `apiKey` made by any Kafka connection of this process: `request` never sends it
 * (the coordinator still holds the transaction open), `answer` sends it and drops the broker's answer (the
 * commit is written, the client never learns it). Wraps the real connection, as a network fault would.
 */
function loseNext(apiKey: number, what: 'request' | 'answer'): { lost: () => boolean; restore: () => void } {
  const prototype = kafka.Connection.prototype as unknown as { send: (...args: unknown[]) => void };
  const send = prototype.send;
  let lost = false;
  prototype.send = function (this: unknown, ...args: unknown[]) {
    if (!lost && args[0] === apiKey) {
      lost = true;
      if (what === 'request') return;
      args[args.length - 1] = () => {};
    }
    send.apply(this, args);
  };
  return {
    lost: () => lost,
    restore: () => {
      prototype.send = send;
    },
  };
}

for (const what of ['request', 'answer'] as const) {
  /**
   * The fault `stuckTransactionMs` is for: a commit whose request or answer is lost leaves the client
   * waiting for good. The processor gives the transaction up, and the new producer's InitProducerId aborts
   * it (request lost) or completes its commit (answer lost); the records are read again from the offsets
   * that then stand, so either way each input has one committed output.
   */
  test(`Kafka transactions: a commit whose ${what} is lost is given up after stuckTransactionMs, each input output once`, {
    timeout: 60_000,
  }, async () => {
    const { input, output, groupId } = await inputAndOutput(`lost-${what}`, 1, 10, () => 'k');
    const processor = new KafkaTransactionalProcessor({
      config: { brokers: BROKERS, groupId, topics: [input], transactionalId: uniqueId('tx'), stuckTransactionMs: 2_000 },
      transform: toOutput(output),
    });
    const aborted: string[] = [];
    processor.on('aborted', (a) => aborted.push(a.error));
    let committed = 0;
    processor.on('committed', (c) => {
      committed += c.records;
    });
    const admin = createAdmin(BROKERS);
    const fault = loseNext(END_TXN, what);
    await processor.start();
    try {
      await waitFor(() => aborted.length > 0, { what: 'the transaction given up', timeoutMs: 30_000 });
      assert.ok(fault.lost(), `an EndTxn ${what} was lost`);
      assert.match(aborted[0] ?? '', /did not finish within 2000 ms/);
      await assertOneOutputEach(admin, groupId, output, 10);
      if (what === 'request') {
        assert.equal(committed, 10, 'the given-up batch was read and committed again');
      } else {
        // The new producer's InitProducerId completed the commit whose answer was lost: that batch is never reported.
        assert.ok(committed < 10, `the given-up batch was not committed twice (${committed} reported)`);
      }
    } finally {
      fault.restore();
      await processor.stop();
      await admin.close();
    }
  });
}
