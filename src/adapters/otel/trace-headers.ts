import type { OtelApi } from './otel-driver.ts';

/** W3C trace context header names (https://www.w3.org/TR/trace-context/). */
export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';

const TRACEPARENT_FORMAT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * Writes the span context as W3C headers. Written here rather than through the globally registered
 * propagator: the stored record must carry W3C trace context whatever propagator the application set up.
 */
export function writeTraceContext(api: typeof OtelApi, context: OtelApi.SpanContext, carrier: Record<string, string>): void {
  if (!api.isSpanContextValid(context)) return;
  carrier[TRACEPARENT] = formatTraceparent(context);
  const state = context.traceState?.serialize();
  if (state) carrier[TRACESTATE] = state;
}

/** Reads the stored W3C headers back; undefined when they are absent or malformed (the span then starts a trace). */
export function readTraceContext(api: typeof OtelApi, headers: Readonly<Record<string, string>>): OtelApi.SpanContext | undefined {
  const context = parseTraceparent(api, headers[TRACEPARENT]);
  if (context === undefined) return undefined;
  const state = headers[TRACESTATE];
  if (state) context.traceState = api.createTraceState(state);
  return context;
}

/** A span context as a W3C `traceparent` value (version 00). */
export function formatTraceparent(context: OtelApi.SpanContext): string {
  return `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/** A W3C `traceparent` value as a remote span context; undefined when absent or malformed. */
export function parseTraceparent(api: typeof OtelApi, value: string | undefined): OtelApi.SpanContext | undefined {
  if (typeof value !== 'string') return undefined;
  const match = TRACEPARENT_FORMAT.exec(value.trim());
  if (!match || match[1] === 'ff' || (match[1] === '00' && match[5] !== undefined)) return undefined;
  const context: OtelApi.SpanContext = {
    traceId: match[2] as string,
    spanId: match[3] as string,
    traceFlags: Number.parseInt(match[4] as string, 16) & 1,
    isRemote: true,
  };
  return api.isSpanContextValid(context) ? context : undefined;
}
