/**
 * RabbitMQ: the relay against an amqplib confirm channel publishing the same records to the same stream
 * queues (persistent, mandatory, a confirm per message), and the consumer against basic.consume + ack on
 * those queues from the first offset, with the same effect transaction and no inbox.
 */
import amqp, { type ConsumeMessage } from 'amqplib';
import { KEY_HEADER } from '../src/adapters/rabbitmq/rabbitmq-message.ts';
import { rabbitNames } from '../src/adapters/rabbitmq/rabbitmq-names.ts';
import { HEADER, type OutgoingRecord } from '../src/core/envelope.ts';
import { partitionFor } from '../src/core/partition-for.ts';
import { rabbitmq } from '../src/entry/rabbitmq.ts';
import type { BenchEnv } from './lib/env.ts';
import type { Reps } from './lib/measure.ts';
import type { BenchResult } from './lib/result.ts';
import { RELAY_BATCH, RELAY_CONCURRENCY } from './relay.ts';
import { type Clock, PARTITIONS, type TransportSide, transportBenches } from './transport-bench.ts';

export const RABBITMQ_URL = process.env.ZL_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
/** The zeroloss subscriber's default prefetch, given to the raw consumer too. */
const PREFETCH = 1_000;

function rabbitSide(): TransportSide {
  return {
    name: 'rabbitmq',
    transport: () => rabbitmq(RABBITMQ_URL),
    relayBaseline: `raw amqplib confirm channel, same records and stream queues, batches of ${RELAY_BATCH}, ${RELAY_CONCURRENCY} in flight (dual write)`,
    consumerBaseline: `raw amqplib basic.consume (prefetch ${PREFETCH}) + ack per message, same effect transaction, no inbox (at-least-once)`,
    async rawPublish(records: OutgoingRecord[]) {
      const conn = await amqp.connect(RABBITMQ_URL);
      const ch = await conn.createConfirmChannel();
      const latencies: number[] = [];
      let next = 0;
      let seq = 0;
      const loop = async () => {
        while (next < records.length) {
          const batch = records.slice(next, next + RELAY_BATCH);
          next += batch.length;
          const t0 = performance.now();
          await Promise.all(
            batch.map(
              (r) =>
                new Promise<void>((resolve, reject) => {
                  const queue = rabbitNames.partition(r.topic, partitionFor(r.key, PARTITIONS));
                  ch.publish(
                    '',
                    queue,
                    r.value as Buffer,
                    { persistent: true, mandatory: true, messageId: `raw-${++seq}`, headers: { ...r.headers, [KEY_HEADER]: r.key } },
                    (error: unknown) => (error ? reject(error as Error) : resolve()),
                  );
                }),
            ),
          );
          const ms = performance.now() - t0;
          for (let i = 0; i < batch.length; i++) latencies.push(ms);
        }
      };
      try {
        await Promise.all(Array.from({ length: RELAY_CONCURRENCY }, loop));
      } finally {
        await conn.close().catch(() => {});
      }
      return latencies;
    },
    async rawConsume(topic, messages, clock: Clock, effect) {
      const conn = await amqp.connect(RABBITMQ_URL);
      const ch = await conn.createChannel();
      const failures: Error[] = [];
      try {
        await ch.prefetch(PREFETCH);
        for (let p = 0; p < PARTITIONS; p++) {
          const queue = rabbitNames.partition(topic, p);
          await ch.consume(
            queue,
            (m: ConsumeMessage | null) => {
              if (!m) return;
              const id = `${queue}/${String(m.properties.headers?.['x-stream-offset'])}`;
              clock.arrive(id);
              const headers = (m.properties.headers ?? {}) as Record<string, unknown>;
              effect({ id: String(headers[HEADER.id] ?? id), key: String(headers[KEY_HEADER] ?? ''), value: m.content }).then(
                () => {
                  ch.ack(m);
                  clock.finish(id);
                },
                (error: Error) => failures.push(error),
              );
            },
            { noAck: false, arguments: { 'x-stream-offset': 'first' } },
          );
        }
        const deadline = Date.now() + 300_000;
        while (clock.done < messages && failures.length === 0) {
          if (Date.now() > deadline) throw new Error('bench: timed out waiting for the raw RabbitMQ consumer');
          await new Promise((r) => setTimeout(r, 5));
        }
        if (failures.length > 0) throw failures[0];
      } finally {
        await conn.close().catch(() => {});
      }
    },
    async close() {},
  };
}

/** `npm run bench -- rabbitmq`: relay, WAL relay and consumer against amqplib. */
export function rabbitmqBenches(env: BenchEnv, messages: number, reps: Reps): Promise<BenchResult[]> {
  return transportBenches(rabbitSide, env, messages, reps);
}
