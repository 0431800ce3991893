import {
  type MessageSpan,
  noTracing,
  SEND_TRACEPARENT_HEADER,
  type SendSpan,
  type SpanAttributes,
  type Tracing,
} from '../../ports/tracing.ts';
import { loadOtelApi, type OtelApi } from './otel-driver.ts';
import { formatTraceparent, parseTraceparent, readTraceContext, TRACEPARENT, writeTraceContext } from './trace-headers.ts';

export interface OtelTracingOptions {
  /** `messaging.system` of the spans: the transport's kind (`kafka`, `rabbitmq`, ...). */
  system?: string;
  /** Instrumentation scope name; default 'zeroloss'. */
  tracerName?: string;
}

/**
 * Tracing through `@opentelemetry/api`, following the OpenTelemetry messaging semantic conventions. When
 * the package is not installed this is `noTracing`. When it is installed but no SDK is registered, `active()`
 * says so and callers skip tracing: the API's no-op spans are not free (about 1–4 µs a record, measured),
 * which a relay sending tens of thousands of records a second should not pay for nothing.
 */
export function otelTracing(options: OtelTracingOptions = {}): Tracing {
  const api = loadOtelApi();
  if (api === undefined) return noTracing;
  const tracer = api.trace.getTracer(options.tracerName ?? 'zeroloss');
  const system = messagingSystem(options.system);
  // Until an SDK registers, the API hands out its own proxy provider whose delegate is the no-op provider
  // (this object). A provider registered through another copy of the API is not our proxy class: active.
  const noop = new api.ProxyTracerProvider().getDelegate();
  const base = (operation: 'create' | 'send' | 'process', topic: string, attributes: SpanAttributes): OtelApi.Attributes => {
    const out: OtelApi.Attributes = {
      'messaging.system': system,
      'messaging.operation.type': operation,
      'messaging.operation.name': operation,
      'messaging.destination.name': topic,
    };
    return { ...out, ...translate(attributes) };
  };
  // Callers name the record's key and offset neutrally; Kafka has convention names for both.
  const translate = (attributes: SpanAttributes): OtelApi.Attributes => {
    const out = defined(attributes) ?? {};
    if (system !== 'kafka') return out;
    if (out['zeroloss.offset'] !== undefined) out['messaging.kafka.offset'] = Number(out['zeroloss.offset']);
    if (out['zeroloss.key'] !== undefined) out['messaging.kafka.message.key'] = out['zeroloss.key'];
    delete out['zeroloss.offset'];
    delete out['zeroloss.key'];
    return out;
  };
  return {
    active() {
      const provider = api.trace.getTracerProvider();
      return !(provider instanceof api.ProxyTracerProvider) || provider.getDelegate() !== noop;
    },
    create(topic, attributes, carrier) {
      const span = tracer.startSpan(`create ${topic}`, { kind: api.SpanKind.PRODUCER, attributes: base('create', topic, attributes) });
      if (carrier[TRACEPARENT] === undefined) writeTraceContext(api, span.spanContext(), carrier);
      return wrap(api, span, api.context.active(), translate);
    },
    send(topic, headers, attributes) {
      // The relay runs outside any request: the stored context is the parent, so the send shows in the
      // producer's trace, and also the link the conventions ask of a send span to its creation context.
      const stored = readTraceContext(api, headers);
      const parent = stored ? api.trace.setSpanContext(api.ROOT_CONTEXT, stored) : api.ROOT_CONTEXT;
      const span = tracer.startSpan(
        `send ${topic}`,
        { kind: api.SpanKind.PRODUCER, attributes: base('send', topic, attributes), links: stored ? [{ context: stored }] : [] },
        parent,
      );
      const inject = (carrier: Record<string, string>) => {
        const own = span.spanContext();
        if (api.isSpanContextValid(own)) carrier[SEND_TRACEPARENT_HEADER] = formatTraceparent(own);
      };
      const sendSpan: SendSpan = { ...wrap(api, span, parent, translate), inject };
      return sendSpan;
    },
    process(topic, headers, attributes) {
      // A child of the stored context (the producer's trace), linked to the send that delivered this copy:
      // a message resent after a lost acknowledgement reaches the consumer twice, each copy from its own send.
      const stored = readTraceContext(api, headers);
      const parent = stored ? api.trace.setSpanContext(api.ROOT_CONTEXT, stored) : api.ROOT_CONTEXT;
      const sent = parseTraceparent(api, headers[SEND_TRACEPARENT_HEADER]);
      const span = tracer.startSpan(
        `process ${topic}`,
        { kind: api.SpanKind.CONSUMER, attributes: base('process', topic, attributes), links: sent ? [{ context: sent }] : [] },
        parent,
      );
      return wrap(api, span, parent, translate);
    },
    eventOnActiveSpan(name, attributes) {
      api.trace.getActiveSpan()?.addEvent(name, defined(attributes));
    },
  };
}

/** Semantic-convention names of the transports that have one; the others keep their own kind. */
function messagingSystem(kind: string | undefined): string {
  if (kind === 'kafka' || kind === 'rabbitmq') return kind;
  if (kind === 'redis-streams') return 'redis';
  return kind ?? 'zeroloss';
}

function defined(attributes: SpanAttributes | undefined): OtelApi.Attributes | undefined {
  if (attributes === undefined) return undefined;
  const out: OtelApi.Attributes = {};
  for (const [name, value] of Object.entries(attributes)) if (value !== undefined) out[name] = value;
  return out;
}

function wrap(
  api: typeof OtelApi,
  span: OtelApi.Span,
  parent: OtelApi.Context,
  translate: (attributes: SpanAttributes) => OtelApi.Attributes,
): MessageSpan {
  return {
    run: (fn) => api.context.with(api.trace.setSpan(parent, span), fn),
    setAttributes: (attributes) => {
      span.setAttributes(translate(attributes));
    },
    event: (name, attributes) => {
      span.addEvent(name, defined(attributes));
    },
    end: (error) => {
      if (error !== undefined) {
        span.recordException(error instanceof Error ? error : String(error));
        span.setStatus({ code: api.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
      }
      span.end();
    },
  };
}
