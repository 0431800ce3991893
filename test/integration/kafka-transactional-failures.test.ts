import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createAdmin } from '../../src/adapters/kafka/kafka-admin.ts';
import { KafkaTransactionalProcessor, type TransformInput } from '../../src/adapters/kafka/kafka-transactional-processor.ts';
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
