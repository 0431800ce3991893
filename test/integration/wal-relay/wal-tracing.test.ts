import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { kafka } from '../../../src/adapters/kafka/kafka-transport.ts';
import { otelTracing } from '../../../src/adapters/otel/otel-tracing.ts';
import { ZerolossError } from '../../../src/core/errors.ts';
import { createConsumer } from '../../../src/entry/create-consumer.ts';
import { createOutbox } from '../../../src/outbox/outbox.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';
import type { Publisher } from '../../../src/ports/transport.ts';
import { createTopic, KAFKA_BROKERS, uniqueTopic } from '../../helpers/kafka.ts';
import { uniqueName } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { startWalPostgres, walSchema } from './wal-postgres.ts';

/**
 * The WAL relay's send spans, over Kafka to a consumer: the relay sends a copy with its per-send header
 * (zl-send-traceparent), the stored row keeps the bytes enqueued, and the consumer's process span links to
 * the send that delivered it.
 */
const exporter = new InMemorySpanExporter();
const contextManager = new AsyncLocalStorageContextManager().enable();
context.setGlobalContextManager(contextManager);
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
const tracer = trace.getTracer('shop');

let instance: PostgresInstance;
const transport = kafka({ brokers: KAFKA_BROKERS });

before(async () => {
  instance = await startWalPostgres('tracing');
});
after(async () => {
  await transport.close();
  await instance?.stop('fast');
  contextManager.disable();
});

test('WAL relay: each send in place gets a span; the process span links to the one that delivered the message', async () => {
  const s = await walSchema(instance.url);
  const topic = uniqueTopic('zl-wal-trace');
  await createTopic(topic, 1);
  await createTopic(`${topic}.dlq`, 1);
  // The first send of every record fails before reaching the broker (retryable): the relay sends again in place.
  let calls = 0;
  const flaky: Publisher = {
    close: () => transport.publisher.close(),
    async publish(records) {
      if (++calls === 1) {
        const error = new ZerolossError('ZL_SEND_FAILED', 'broker busy (test)', { retryable: true });
        return records.map(() => ({ ok: false as const, error, attempted: true }));
      }
      return transport.publisher.publish(records);
    },
  };
  const relay = createRelay({ mode: 'wal', wal: s.wal, transport: { publisher: flaky }, tracing: otelTracing({ system: 'kafka' }) });
  const consumer = createConsumer({ store: s.store, transport, groupId: uniqueName('g'), topics: [topic] });
  consumer.handle('order.created', async () => {});
  try {
    await relay.start();
    const outbox = createOutbox({ store: s.store, producerId: 'shop', tracing: otelTracing() });
    const envelope = await tracer.startActiveSpan('checkout', async (request) => {
      try {
        return await s.store.transaction((tx) => outbox.enqueue(tx, { topic, key: 'o-1', type: 'order.created', payload: { n: 1 } }));
      } finally {
        request.end();
      }
    });
    await consumer.start();
    const spansOf = (name: string) =>
      exporter.getFinishedSpans().filter((x) => x.name === `${name} ${topic}` && x.attributes['messaging.message.id'] === envelope.id);
    await waitFor(() => spansOf('process').length === 1, { what: 'the process span', timeoutMs: 60_000 });

    const [create] = spansOf('create');
    const sends = spansOf('send');
    const [processSpan] = spansOf('process');
    assert.ok(create && processSpan);
    assert.deepEqual(
      sends.map((x) => x.attributes['zeroloss.attempt']),
      [1, 2],
    );
    const delivered = sends[1];
    for (const send of sends) assert.equal(send.parentSpanContext?.spanId, create.spanContext().spanId);
    assert.equal(processSpan.parentSpanContext?.spanId, create.spanContext().spanId);
    assert.equal(processSpan.spanContext().traceId, create.spanContext().traceId);
    assert.deepEqual(
      processSpan.links.map((l) => [l.context.traceId, l.context.spanId]),
      [[create.spanContext().traceId, delivered?.spanContext().spanId]],
    );
    assert.equal(processSpan.attributes['messaging.system'], 'kafka');
    const stored = await s.pool.query<{ headers: Record<string, string> }>(
      `select headers from "${s.schema}".outbox where message_id = $1`,
      [envelope.id],
    );
    assert.equal(stored.rows[0]?.headers.traceparent, envelope.headers.traceparent);
    assert.equal(stored.rows[0]?.headers['zl-send-traceparent'], undefined);
  } finally {
    await consumer.stop();
    await relay.stop();
    await s.cleanup();
  }
});
