/**
 * A WAL relay process for the kill tests: the library entry (createRelay mode 'wal') with the Kafka
 * publisher, lighter to start than the whole CLI, so a kill loop spends its time relaying. It prints
 * `streaming` when it holds the slot.
 *
 * With ZL_DIE_AFTER_BROKER_ACK=1 it dies between the broker's confirmation and the slot's: its publisher
 * sends the first batch and, once the broker has confirmed it, kills its own process before the relay can
 * record it or confirm it to the slot. The fault lives in this test-only wrapper of the Publisher port.
 *
 *   ZL_PG_URL, ZL_SCHEMA, ZL_KAFKA_BROKERS   where to work
 */
import { diesAfterAck, requiredEnv } from '../../../faults/dies-after-ack.ts';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { postgres } from '../../../src/adapters/postgres/postgres.ts';
import { postgresWal } from '../../../src/entry/postgres.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';

const env = requiredEnv('wal-relay-child');

const inner = new KafkaPublisher({ brokers: env('ZL_KAFKA_BROKERS').split(','), deliveryTimeoutMs: 10_000 });

const store = postgres(env('ZL_PG_URL'), { schema: env('ZL_SCHEMA') });
const relay = createRelay({
  mode: 'wal',
  wal: postgresWal(store, { url: env('ZL_PG_URL') }),
  transport: { publisher: process.env.ZL_DIE_AFTER_BROKER_ACK === '1' ? diesAfterAck(inner) : inner },
  walBatchSize: 200,
  // Dying after the first ack must mean one batch acked: with two groups in flight (the default) the other
  // one can be acked by the broker too before the kill lands, unprinted, and the test would count too few.
  ...(process.env.ZL_DIE_AFTER_BROKER_ACK === '1' ? { publishConcurrency: 1 } : {}),
});
relay.on('slot', (e) => process.stdout.write(`${e.state}\n`));
relay.on('error', (e) => process.stderr.write(`error: ${e.message}\n`));
await relay.start();
