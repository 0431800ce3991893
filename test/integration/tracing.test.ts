import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { context, createTraceState, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { createConsumer, createOutbox, otelTracing, PermanentError, RetryableError } from '../../src/index.ts';
import { postgres } from '../../src/entry/postgres.ts';
import { tableLog } from '../../src/entry/table-log.ts';
import { Relay } from '../../src/outbox/relay.ts';
import { PG_URL, uniqueName } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';

// The application's OpenTelemetry setup, as a service registers it: an SDK provider and an async context
// manager. zeroloss only talks to @opentelemetry/api.
const exporter = new InMemorySpanExporter();
const contextManager = new AsyncLocalStorageContextManager().enable();
context.setGlobalContextManager(contextManager);
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
const tracer = trace.getTracer('shop');

const schema = uniqueName('zltrace');
const store = postgres(PG_URL, { schema });
const transport = tableLog(store);
const topic = 'orders';

before(async () => {
  await store.migrate();
  await transport.ensureTopic(topic, 2);
  await transport.ensureTopic(`${topic}.dlq`, 1);
});
after(async () => {
  await transport.close();
  await store.transaction((tx) => tx.query(`drop schema if exists "${schema}" cascade`)).catch(() => {});
  await store.close();
  contextManager.disable();
});

const spans = () => exporter.getFinishedSpans();
const named = (name: string, messageId: string): ReadableSpan | undefined =>
  spans().find((s) => s.name === name && s.attributes['messaging.message.id'] === messageId);

test('enqueue inside a span: send and process spans continue its trace, with the conventions’ attributes, retry and dead-letter events', async () => {
  const outbox = createOutbox({ store, producerId: 'shop', tracing: otelTracing() });
  const enqueue = (type: string, key: string) =>
    tracer.startActiveSpan('checkout', async (request) => {
      try {
        const envelope = await store.transaction((tx) => outbox.enqueue(tx, { topic, key, type, payload: { key } }));
        return { envelope, request };
      } finally {
        request.end();
      }
    });
  const ok = await enqueue('order.created', 'o-1');
  // More messages of other keys, delivered together: group commit runs their handlers in one transaction.
  const others = [await enqueue('order.created', 'o-4'), await enqueue('order.created', 'o-5'), await enqueue('order.created', 'o-6')];
  const flaky = await enqueue('order.flaky', 'o-2');
  const doomed = await enqueue('order.doomed', 'o-3');
  // Stored with the message: the relay resends these bytes, so it cannot lose or change them.
  assert.match(ok.envelope.headers.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);

  const relay = new Relay({
    sources: [store.relaySource],
    publisher: transport.publisher,
    db: store.db,
    tracing: otelTracing({ system: transport.kind }),
  });
  assert.equal(await relay.drain(), 6);

  const consumer = createConsumer({ store, transport, groupId: uniqueName('g'), topics: [topic] });
  let flakyRuns = 0;
  consumer.handle('order.created', async (m) => {
    // The user's own span nests under the process span.
    await tracer.startActiveSpan('charge card', { attributes: { 'shop.message': m.id } }, async (s) => s.end());
  });
  consumer.handle(
    'order.flaky',
    async () => {
      if (++flakyRuns === 1) throw new RetryableError('payment service busy');
    },
    { retry: { maxRetries: 3, delayMs: 10 } },
  );
  consumer.handle('order.doomed', async () => {
    throw new PermanentError('no such customer');
  });
  const finished = new Set<string>();
  consumer.on('processed', (e) => finished.add(e.messageId));
  consumer.on('dead-letter', (e) => finished.add(e.messageId ?? ''));
  await consumer.start();
  try {
    await waitFor(() => [ok, flaky, doomed, ...others].every((m) => named(`process ${topic}`, m.envelope.id)), {
      what: 'three process spans',
      timeoutMs: 20_000,
    });
  } finally {
    await consumer.stop();
  }
  assert.ok(finished.has(ok.envelope.id) && finished.has(flaky.envelope.id) && finished.has(doomed.envelope.id));

  const id = ok.envelope.id;
  const create = named(`create ${topic}`, id);
  const send = named(`send ${topic}`, id);
  const processSpan = named(`process ${topic}`, id);
  assert.ok(create && send && processSpan, 'create, send and process spans of the message');
  const traceId = ok.request.spanContext().traceId;
  // One trace, from the request through enqueue, relay send and consumer processSpan.
  assert.equal(create.spanContext().traceId, traceId);
  assert.equal(create.parentSpanContext?.spanId, ok.request.spanContext().spanId);
  assert.equal(send.spanContext().traceId, traceId);
  assert.equal(processSpan.spanContext().traceId, traceId);
  // The stored context is the enqueue span: the send is parented on and linked to it, the process is its child.
  assert.equal(send.parentSpanContext?.spanId, create.spanContext().spanId);
  assert.deepEqual(
    send.links.map((l) => l.context.spanId),
    [create.spanContext().spanId],
  );
  assert.equal(processSpan.parentSpanContext?.spanId, create.spanContext().spanId);
  assert.equal(create.kind, SpanKind.PRODUCER);
  assert.equal(send.kind, SpanKind.PRODUCER);
  assert.equal(processSpan.kind, SpanKind.CONSUMER);

  // Messaging semantic conventions.
  assert.equal(create.attributes['messaging.operation.type'], 'create');
  assert.equal(send.attributes['messaging.system'], 'table-log');
  assert.equal(send.attributes['messaging.operation.type'], 'send');
  assert.equal(send.attributes['messaging.destination.name'], topic);
  assert.equal(send.attributes['messaging.message.id'], id);
  assert.match(String(send.attributes['messaging.destination.partition.id']), /^[01]$/);
  assert.match(String(send.attributes['zeroloss.offset']), /^\d+$/);
  assert.equal(send.attributes['messaging.kafka.offset'], undefined, 'Kafka names only on Kafka');
  assert.equal(processSpan.attributes['messaging.system'], 'table-log');
  assert.equal(processSpan.attributes['messaging.operation.type'], 'process');
  assert.equal(processSpan.attributes['messaging.destination.name'], topic);
  assert.equal(processSpan.attributes['messaging.destination.partition.id'], send.attributes['messaging.destination.partition.id']);
  assert.equal(processSpan.attributes['messaging.consumer.group.name'], consumer.config.groupId);
  assert.equal(processSpan.attributes['zeroloss.offset'], send.attributes['zeroloss.offset']);
  assert.equal(processSpan.attributes['zeroloss.outcome'], 'processed');

  // Each handler runs inside its own message's process span, also when handlers of several messages share
  // one effect transaction (a handler that ran again after a shared transaction failed shows twice).
  for (const m of [ok, ...others]) {
    const own = named(`process ${topic}`, m.envelope.id)?.spanContext().spanId;
    const charges = spans().filter((s) => s.name === 'charge card' && s.attributes['shop.message'] === m.envelope.id);
    assert.ok(charges.length >= 1);
    for (const charge of charges) assert.equal(charge.parentSpanContext?.spanId, own, 'the handler runs inside its process span');
  }

  // A retried message: its process span records the retry; a dead-lettered one, the dead letter.
  const flakyProcess = named(`process ${topic}`, flaky.envelope.id);
  assert.equal(flakyProcess?.spanContext().traceId, flaky.request.spanContext().traceId);
  const retries = flakyProcess?.events.filter((e) => e.name === 'zeroloss.retry') ?? [];
  assert.equal(retries.length, 1);
  assert.equal(retries[0]?.attributes?.['zeroloss.attempt'], 1);
  assert.match(String(retries[0]?.attributes?.['error.message']), /payment service busy/);
  assert.equal(flakyProcess?.attributes['zeroloss.outcome'], 'processed');
  const doomedProcess = named(`process ${topic}`, doomed.envelope.id);
  const dead = doomedProcess?.events.find((e) => e.name === 'zeroloss.dead_letter');
  assert.equal(dead?.attributes?.['error.type'], 'ZL_PERMANENT');
  assert.equal(doomedProcess?.attributes['zeroloss.outcome'], 'dead-lettered');
});

test('trace headers: a malformed or foreign traceparent starts a new trace instead of failing; tracestate survives the trip', () => {
  const tracing = otelTracing({ system: 'kafka' });
  assert.equal(tracing.active(), true);
  for (const traceparent of [
    'garbage',
    '00-00000000000000000000000000000000-b7ad6b7169203331-01',
    'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    '',
  ]) {
    const span = tracing.process('t', { traceparent, tracestate: '=,,bad' }, {});
    span.end();
  }
  const fresh = spans().filter((s) => s.name === 'process t');
  assert.equal(fresh.length, 4);
  for (const s of fresh) assert.equal(s.parentSpanContext, undefined, 'no parent from a bad header');

  const carrier: Record<string, string> = {};
  const parent = tracer.startSpan('with state');
  context.with(trace.setSpan(context.active(), parent), () => {
    const stated = trace.setSpanContext(context.active(), { ...parent.spanContext(), traceState: createTraceState('vendor=abc') });
    context.with(stated, () => tracing.create('t', {}, carrier).end());
  });
  parent.end();
  assert.equal(carrier.tracestate, 'vendor=abc');
  const send = tracing.send('t', carrier, {});
  send.end();
  const sent = spans().find((s) => s.name === 'send t');
  assert.equal(sent?.spanContext().traceState?.get('vendor'), 'abc');
  // On Kafka the key and offset take the conventions' Kafka names.
  const onKafka = tracing.process('k', {}, { 'zeroloss.offset': '42', 'zeroloss.key': 'order-7' });
  onKafka.setAttributes({ 'zeroloss.offset': '43' });
  onKafka.end();
  const kafkaSpan = spans().find((s) => s.name === 'process k');
  assert.equal(kafkaSpan?.attributes['messaging.system'], 'kafka');
  assert.equal(kafkaSpan?.attributes['messaging.kafka.offset'], 43);
  assert.equal(kafkaSpan?.attributes['messaging.kafka.message.key'], 'order-7');
  assert.equal(kafkaSpan?.attributes['zeroloss.offset'], undefined);
  // A traceparent the application set itself is kept, not replaced.
  const own = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
  tracing.create('t', {}, own).end();
  assert.equal(own.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
});
