/**
 * A sharded WAL relay process for the shard tests: the library's createRelay (mode 'wal' over
 * postgresWalShards) with the Kafka publisher.
 * Prints `instance <id>` once, then `holding <shards>` (comma-separated, possibly empty) after each change.
 *
 *   ZL_PG_URL, ZL_SCHEMA, ZL_KAFKA_BROKERS   where to work
 */
import { requiredEnv } from '../../../faults/dies-after-ack.ts';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { postgres } from '../../../src/adapters/postgres/postgres.ts';
import { postgresWalShards } from '../../../src/entry/postgres.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';

const env = requiredEnv('wal-shard-child');
const store = postgres(env('ZL_PG_URL'), { schema: env('ZL_SCHEMA') });
const relay = createRelay({
  mode: 'wal',
  wal: postgresWalShards(store, { url: env('ZL_PG_URL') }),
  transport: { publisher: new KafkaPublisher({ brokers: env('ZL_KAFKA_BROKERS').split(','), deliveryTimeoutMs: 10_000 }) },
  walBatchSize: 200,
});
process.stdout.write(`instance ${relay.instanceId}\n`);
relay.on('shards', (e) => process.stdout.write(`holding ${e.holding.join(',')}\n`));
relay.on('error', (e) => process.stderr.write(`error: ${e.message}\n`));
process.once('SIGTERM', () => void relay.stop().then(() => process.exit(0)));
await relay.start();
