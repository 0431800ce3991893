/**
 * A relay process with the broker check that dies between the broker's ack and recording it: its
 * publisher sends the claimed batch and, once the broker has acknowledged it, kills its own process
 * (SIGKILL) before the relay can mark the rows sent. Rows an earlier child left leased are looked for on
 * the broker first. Run by faults/relay-broker-check-kill.ts; the fault lives here, not in the relay.
 *
 *   ZL_PG_URL, ZL_SCHEMA, ZL_KAFKA_BROKERS   where to work
 *   ZL_LEASE_MS, ZL_BATCH                    claim lease and batch size
 */
import { diesAfterAck, requiredEnv } from './dies-after-ack.ts';
import { KafkaInspector } from '../src/adapters/kafka/kafka-inspector.ts';
import { KafkaPublisher } from '../src/adapters/kafka/kafka-publisher.ts';
import { pgDatabase } from '../src/adapters/postgres/pg-database.ts';
import { PostgresOutboxStore } from '../src/adapters/postgres/postgres-outbox-store.ts';
import { Relay } from '../src/outbox/relay.ts';

const env = requiredEnv('relay-broker-check-child');

const brokers = env('ZL_KAFKA_BROKERS').split(',');
const inner = new KafkaPublisher({ brokers, deliveryTimeoutMs: 10_000 });

const db = pgDatabase({ connectionString: env('ZL_PG_URL'), max: 2 });
const relay = new Relay({
  sources: new PostgresOutboxStore(db, { schema: env('ZL_SCHEMA') }),
  publisher: diesAfterAck(inner),
  inspector: process.env.ZL_NO_CHECK === '1' ? undefined : new KafkaInspector({ brokers }),
  config: { leaseMs: Number(env('ZL_LEASE_MS')), batchSize: Number(env('ZL_BATCH')), brokerCheckSlackMs: 1_000 },
});
await relay.drain();
process.exit(0);
