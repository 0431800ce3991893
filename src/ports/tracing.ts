/**
 * Span attribute values, as OpenTelemetry takes them; undefined ones are left out. The record's key and
 * offset go in as `zeroloss.key` / `zeroloss.offset` (a string): the adapter renames them where the
 * transport has convention names (`messaging.kafka.message.key`, `messaging.kafka.offset`).
 */
export type SpanAttributes = Record<string, string | number | boolean | undefined>;

/** One span around one message's step (enqueue, send, process). */
export interface MessageSpan {
  /** Runs `fn` with this span active, so spans the caller starts inside (the handler's own) nest under it. */
  run<T>(fn: () => T): T;
  setAttributes(attributes: SpanAttributes): void;
  event(name: string, attributes?: SpanAttributes): void;
  /** Ends the span; an error marks it failed and is recorded on it. */
  end(error?: unknown): void;
}

/**
 * The header that carries the relay's send span to the consumer, in W3C `traceparent` format. It belongs
 * to one send: the relay puts it on the copy of the record it hands the publisher, never on the stored
 * record, which stays byte for byte what was enqueued, so each resend carries its own. Consumers link
 * their process span to it and leave it out of anything they store or send on (dead letters, retry copies).
 */
export const SEND_TRACEPARENT_HEADER = 'zl-send-traceparent';

/** The relay's span around one send of a record. */
export interface SendSpan extends MessageSpan {
  /** Writes this send's context into `carrier` (the headers of the record handed to the publisher) as SEND_TRACEPARENT_HEADER. */
  inject(carrier: Record<string, string>): void;
}

/**
 * Message tracing, following the OpenTelemetry messaging conventions. The trace context travels with the
 * message as W3C `traceparent` / `tracestate` headers written at enqueue, so they are part of the stored
 * record and the relay resends it byte for byte.
 *
 * Callers ask `active()` and skip all tracing work when it says no (no tracing library loaded, or no SDK
 * registered with it): the hot paths then pay one cheap check per batch or message, and create nothing.
 */
export interface Tracing {
  /** Whether spans would be recorded now. An SDK can be registered after start, so this is asked each time. */
  active(): boolean;
  /**
   * The enqueue span (kind producer, "create"), child of the caller's active span. Writes its context into
   * `carrier` as `traceparent` / `tracestate`, unless the carrier already holds a `traceparent` (the
   * application propagates its own) or nothing is being traced.
   */
  create(topic: string, attributes: SpanAttributes, carrier: Record<string, string>): MessageSpan;
  /** The relay's send span for one stored record (kind producer): parented on its stored context and linked to it. */
  send(topic: string, headers: Readonly<Record<string, string>>, attributes: SpanAttributes): SendSpan;
  /**
   * The consumer's process span for one record (kind consumer): a child of the record's stored context,
   * linked to the send span named by SEND_TRACEPARENT_HEADER when the record carries a valid one.
   */
  process(topic: string, headers: Readonly<Record<string, string>>, attributes: SpanAttributes): MessageSpan;
  /** Adds an event to the span active in the calling context (a retry reported from inside a process span). */
  eventOnActiveSpan(name: string, attributes?: SpanAttributes): void;
}

const noSpan: MessageSpan = {
  run: (fn) => fn(),
  setAttributes: () => {},
  event: () => {},
  end: () => {},
};

const noSendSpan: SendSpan = { ...noSpan, inject: () => {} };

/** Tracing switched off: what features use when no tracing was wired in. */
export const noTracing: Tracing = {
  active: () => false,
  create: () => noSpan,
  send: () => noSendSpan,
  process: () => noSpan,
  eventOnActiveSpan: () => {},
};
