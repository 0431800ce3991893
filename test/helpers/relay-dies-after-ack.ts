/**
 * A relay process that dies between the broker's ack and recording it: its publisher sends the claimed
 * batch, and once the broker has acknowledged it, kills its own process before the relay can mark the rows
 * sent. The fault lives in this test-only wrapper, not in the relay.
 *
 *   ZL_PG_URL, ZL_SCHEMA, ZL_KAFKA_BROKERS   where to work
 *   ZL_LEASE_MS                              the claim lease (default 1000)
 */
import { diesAfterAck, requiredEnv } from '../../faults/dies-after-ack.ts';
import { KafkaPublisher } from '../../src/adapters/kafka/kafka-publisher.ts';
import { pgDatabase } from '../../src/adapters/postgres/pg-database.ts';
import { PostgresOutboxStore } from '../../src/adapters/postgres/postgres-outbox-store.ts';
import { Relay } from '../../src/outbox/relay.ts';

const env = requiredEnv('relay-dies-after-ack');

const inner = new KafkaPublisher({ brokers: env('ZL_KAFKA_BROKERS').split(','), deliveryTimeoutMs: 10_000 });

const db = pgDatabase({ connectionString: env('ZL_PG_URL'), max: 2 });
const relay = new Relay({
  sources: new PostgresOutboxStore(db, { schema: env('ZL_SCHEMA') }),
  publisher: diesAfterAck(inner),
  config: { leaseMs: Number(process.env.ZL_LEASE_MS ?? 1_000) },
});
await relay.drain();
