import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { context, createTraceState, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { createConsumer, createOutbox, otelTracing, PermanentError, RetryableError } from '../../src/index.ts';
import { postgres } from '../../src/entry/postgres.ts';
import { tableLog } from '../../src/entry/table-log.ts';
import type { OutgoingRecord } from '../../src/core/envelope.ts';
import { ZerolossError } from '../../src/core/errors.ts';
import { Relay } from '../../src/outbox/relay.ts';
import type { Publisher } from '../../src/ports/transport.ts';
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
/** Its own topic, so the resend test's consumer reads only its two messages. */
const resendTopic = 'payments';

before(async () => {
  await store.migrate();
  await transport.ensureTopic(topic, 2);
  await transport.ensureTopic(`${topic}.dlq`, 1);
  await transport.ensureTopic(resendTopic, 1);
  await transport.ensureTopic(`${resendTopic}.dlq`, 1);
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
  // ... and linked to the send that delivered it, through the relay's per-send header.
  assert.deepEqual(
    processSpan.links.map((l) => [l.context.traceId, l.context.spanId]),
    [[traceId, send.spanContext().spanId]],
  );
  // That header went to the broker only: the stored row keeps the bytes enqueued.
  const stored = await store.db.query<{ headers: Record<string, string> }>(`select headers from "${schema}".outbox where message_id = $1`, [
    id,
  ]);
  assert.equal(stored.rows[0]?.headers.traceparent, ok.envelope.headers.traceparent);
  assert.equal(stored.rows[0]?.headers['zl-send-traceparent'], undefined);
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

test('a resent message links each copy to its own send; a malformed send header is ignored', async () => {
  const outbox = createOutbox({ store, producerId: 'shop', tracing: otelTracing() });
  const enqueue = (key: string) =>
    tracer.startActiveSpan('checkout', async (request) => {
      try {
        return await store.transaction((tx) => outbox.enqueue(tx, { topic: resendTopic, key, type: 'order.created', payload: { key } }));
      } finally {
        request.end();
      }
    });
  const resent = await enqueue('r-1');
  const mangled = await enqueue('r-2');
  // The broker takes the first send of `resent` but its acknowledgement is lost: the relay sends it again,
  // and the consumer gets two copies. `mangled` reaches the broker with a send header that is not a traceparent.
  let resentSends = 0;
  const lossy: Publisher = {
    close: () => transport.publisher.close(),
    async publish(records: OutgoingRecord[]) {
      const out = records.map((r) =>
        r.headers['zl-id'] === mangled.id ? { ...r, headers: { ...r.headers, 'zl-send-traceparent': '00-not-a-traceparent' } } : r,
      );
      const outcomes = await transport.publisher.publish(out);
      return outcomes.map((o, i) => {
        if (records[i]?.headers['zl-id'] !== resent.id || ++resentSends > 1) return o;
        return {
          ok: false as const,
          error: new ZerolossError('ZL_SEND_FAILED', 'acknowledgement lost (test)', { retryable: true }),
          attempted: true,
        };
      });
    },
  };
  const relay = new Relay({
    sources: [store.relaySource],
    publisher: lossy,
    db: store.db,
    config: { backoff: { baseMs: 1, maxMs: 1, jitter: 0 } },
    tracing: otelTracing({ system: transport.kind }),
  });
  await waitFor(
    async () => {
      await relay.drain();
      return resentSends >= 2;
    },
    { what: 'the second send' },
  );

  const consumer = createConsumer({ store, transport, groupId: uniqueName('g'), topics: [resendTopic] });
  consumer.handle('order.created', async () => {});
  const deadLetters: string[] = [];
  consumer.on('dead-letter', (e) => deadLetters.push(e.messageId ?? ''));
  const processSpans = (messageId: string) =>
    spans().filter((s) => s.name === `process ${resendTopic}` && s.attributes['messaging.message.id'] === messageId);
  await consumer.start();
  try {
    await waitFor(() => processSpans(resent.id).length === 2 && processSpans(mangled.id).length === 1, {
      what: 'process spans',
      timeoutMs: 20_000,
    });
  } finally {
    await consumer.stop();
  }

  const create = named(`create ${resendTopic}`, resent.id);
  const sends = spans().filter((s) => s.name === `send ${resendTopic}` && s.attributes['messaging.message.id'] === resent.id);
  const first = sends.find((s) => s.attributes['zeroloss.attempt'] === 1);
  const second = sends.find((s) => s.attributes['zeroloss.attempt'] === 2);
  assert.ok(create && first && second && sends.length === 2, 'two send spans, attempts 1 and 2');
  // The first copy is processed and linked to the first send; the second is a duplicate (the per-send header
  // is no part of the message's identity, so no ZL_MESSAGE_ID_CONFLICT) linked to the second send.
  const byOutcome = new Map(processSpans(resent.id).map((s) => [s.attributes['zeroloss.outcome'], s]));
  assert.deepEqual([...byOutcome.keys()].sort(), ['duplicate', 'processed']);
  assert.deepEqual(
    byOutcome.get('processed')?.links.map((l) => l.context.spanId),
    [first.spanContext().spanId],
  );
  assert.deepEqual(
    byOutcome.get('duplicate')?.links.map((l) => l.context.spanId),
    [second.spanContext().spanId],
  );
  for (const s of processSpans(resent.id)) {
    assert.equal(s.spanContext().traceId, create.spanContext().traceId);
    assert.equal(s.parentSpanContext?.spanId, create.spanContext().spanId, 'still a child of the stored context');
  }
  assert.deepEqual(deadLetters, []);

  // A malformed send header: processed as usual, no link, still in the producer's trace.
  const [mangledProcess] = processSpans(mangled.id);
  assert.equal(mangledProcess?.attributes['zeroloss.outcome'], 'processed');
  assert.deepEqual(mangledProcess?.links, []);
  assert.equal(mangledProcess?.parentSpanContext?.spanId, named(`create ${resendTopic}`, mangled.id)?.spanContext().spanId);
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
  // The send header: a valid one becomes the process span's link; a bad one is left out.
  const stored = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const sendHeader = '00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01';
  for (const value of [sendHeader, 'garbage', '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01', '']) {
    tracing.process('linked', { traceparent: stored, 'zl-send-traceparent': value }, {}).end();
  }
  const linked = spans().filter((s) => s.name === 'process linked');
  assert.deepEqual(
    linked.map((s) => s.links.map((l) => l.context.spanId)),
    [['00f067aa0ba902b7'], [], [], []],
  );
  for (const s of linked) assert.equal(s.parentSpanContext?.spanId, 'b7ad6b7169203331');

  const carrier: Record<string, string> = {};
  const parent = tracer.startSpan('with state');
  context.with(trace.setSpan(context.active(), parent), () => {
    const stated = trace.setSpanContext(context.active(), { ...parent.spanContext(), traceState: createTraceState('vendor=abc') });
    context.with(stated, () => tracing.create('t', {}, carrier).end());
  });
  parent.end();
  assert.equal(carrier.tracestate, 'vendor=abc');
  const send = tracing.send('t', carrier, {});
  const onTheWire = { ...carrier };
  send.inject(onTheWire);
  send.end();

  const sent = spans().find((s) => s.name === 'send t');
  assert.equal(sent?.spanContext().traceState?.get('vendor'), 'abc');
  // The send writes its own context for the consumer into the copy it sends, never into the stored headers.
  assert.equal(onTheWire['zl-send-traceparent'], `00-${sent?.spanContext().traceId}-${sent?.spanContext().spanId}-01`);
  assert.equal(carrier['zl-send-traceparent'], undefined);
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
