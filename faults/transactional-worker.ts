/**
 * A consumer process of the fault suite for `--exactly-once kafka-transactions`: zeroloss's
 * KafkaTransactionalProcessor (consume-transform-produce, docs/consumer.md "Exactly-once variants") reading
 * the suite's topic and writing one output record per order to `ZL_FX_OUTPUT_TOPIC`, outputs and input
 * offsets in one Kafka transaction. The effect is the output record: the checker reads the output topic
 * with read_committed (faults/committed-topic-reader.ts), where each order must appear exactly once, in
 * its key's commit order.
 *
 * The transactional id is the worker's name within the run: a restarted (or SIGCONTed) worker's successor
 * fences its predecessor, as an operator's instance keeps its id across restarts.
 *
 * With ZL_FX_BREAK=offsets-outside-transaction (TEST-ONLY) the processor is given a subscriber that
 * commits each batch's offsets as it is handed over, outside and before the transaction that produces its
 * outputs (faults/offsets-outside-transaction.ts): a kill or a lost partition between the two loses them.
 */
import { KafkaSubscriber } from '../src/adapters/kafka/kafka-subscriber.ts';
import { KafkaTransactionalProcessor } from '../src/adapters/kafka/kafka-transactional-processor.ts';
import { HEADER } from '../src/core/envelope.ts';
import { requiredEnv } from './dies-after-ack.ts';
import type { WorkerReport } from './consumer-worker.ts';
import { SubscriberCommittingOnHandover } from './offsets-outside-transaction.ts';

const env = requiredEnv('transactional-worker');
const worker = env('ZL_FX_WORKER');
const brokers = env('ZL_FX_BROKERS').split(',');
const group = env('ZL_FX_GROUP');
const output = env('ZL_FX_OUTPUT_TOPIC');
const broken = process.env.ZL_FX_BREAK === 'offsets-outside-transaction';

const report = (message: WorkerReport) => process.send?.(message);
let errorsReported = 0;
const reportError = (error: Error) => {
  if (errorsReported++ < 20) report({ kind: 'error', worker, message: error.message });
};

const clientId = `zl-fx-${worker}`;
// The same short sessions as the inbox consumers (consumer-worker.ts), so a killed or frozen member's
// partitions move in seconds.
const subscriberConfig = {
  brokers,
  clientId,
  sessionTimeoutMs: 6_000,
  heartbeatIntervalMs: 500,
  rebalanceTimeoutMs: 20_000,
  maxWaitMs: 100,
};
const subscriber = broken ? new SubscriberCommittingOnHandover(subscriberConfig) : new KafkaSubscriber(subscriberConfig);
subscriber.on('error', reportError);
const processor = new KafkaTransactionalProcessor({
  config: {
    brokers,
    groupId: group,
    topics: [env('ZL_FX_TOPIC')],
    transactionalId: `${group}-${worker}`,
    clientId,
    revokeTimeoutMs: 10_000,
  },
  subscriber,
  // The output carries the input's id and per-key sequence headers, and the input record's place: what the
  // checker counts and orders by.
  transform: ({ record }) => [
    {
      topic: output,
      key: record.key,
      value: record.value,
      headers: {
        [HEADER.id]: record.headers[HEADER.id] ?? '',
        [HEADER.seq]: record.headers[HEADER.seq] ?? '',
        // The input record it was made from: one input record must have exactly one committed output.
        'fx-input': `${record.partition}:${record.offset}`,
        'fx-worker': worker,
      },
    },
  ],
});
// What it did, on stdout (the harness keeps each member's last lines for a failed scenario's report).
const done = { transactions: 0, records: 0, aborted: 0, lastError: '', errors: 0, lastClientError: '' };
processor.on('error', (error) => {
  done.errors++;
  done.lastClientError = `${error.message} ${JSON.stringify((error as { errors?: unknown }).errors ?? '').slice(0, 300)}`;
  reportError(error);
});
processor.on('committed', (c) => {
  done.transactions++;
  done.records += c.records;
});
processor.on('aborted', (a) => {
  done.aborted++;
  done.lastError = a.error;
});
setInterval(() => process.stdout.write(`${new Date().toISOString()} ${JSON.stringify(done)}\n`), 5_000).unref();

let stopping = false;
process.on('SIGTERM', async () => {
  if (stopping) return;
  stopping = true;
  await processor.stop().catch(() => {});
  process.exit(0);
});
process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));

await processor.start();
report({ kind: 'started', worker });
