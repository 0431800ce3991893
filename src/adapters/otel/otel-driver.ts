import { createRequire } from 'node:module';
import type * as OtelApi from '@opentelemetry/api';

export type { OtelApi };

let loaded: typeof OtelApi | null | undefined;

/**
 * `@opentelemetry/api`, an optional peer, loaded on first use, or undefined when it is not installed.
 * Loaded synchronously (require) so tracing is settled when the first message goes through, and once: a
 * missing package costs one failed resolution per process, never a try/catch per message. The API keeps
 * its registrations (tracer provider, context manager) on a process-wide global, so this copy sees the
 * SDK the application registered whether it imported the API as ESM or CommonJS.
 */
export function loadOtelApi(): typeof OtelApi | undefined {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('@opentelemetry/api') as typeof OtelApi;
    } catch {
      loaded = null;
    }
  }
  return loaded ?? undefined;
}
