import { createRequire } from 'node:module';
import type pinoModule from 'pino';

export type Pino = typeof pinoModule;

let loaded: Pino | null | undefined;

/**
 * `pino`, an optional peer, loaded on first use, or undefined when it is not installed (the logger then
 * writes the same JSON lines itself, see json-logger.ts). Loaded synchronously, once per process.
 */
export function loadPino(): Pino | undefined {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('pino') as Pino;
    } catch {
      loaded = null;
    }
  }
  return loaded ?? undefined;
}
