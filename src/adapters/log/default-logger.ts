import type { Logger } from '../../ports/logger.ts';
import { jsonLogger, type LogLevel } from './json-logger.ts';
import { loadPino } from './pino-driver.ts';

export interface DefaultLoggerOptions {
  /** Lowest level written; default `ZEROLOSS_LOG_LEVEL` or 'info'. */
  level?: LogLevel;
  /** Where lines go; default stdout. Anything with `write(line)` (a file stream, a test's capture). */
  destination?: { write(line: string): unknown };
  /** Fields on every line, e.g. { component: 'relay' }. */
  bindings?: Record<string, unknown>;
}

/**
 * The logger of zeroloss's own processes: pino when it is installed (an optional peer), else the same JSON
 * lines written directly, so the CLI logs alike either way. JSON always, in a terminal too: pino-pretty
 * (`zeroloss relay | npx pino-pretty`) makes them readable without zeroloss depending on it.
 */
export function defaultLogger(options: DefaultLoggerOptions = {}): Logger {
  const level = options.level ?? envLevel() ?? 'info';
  const destination = options.destination ?? process.stdout;
  const bindings = options.bindings ?? {};
  const pino = loadPino();
  if (pino === undefined) return jsonLogger({ level, bindings, write: (line) => destination.write(line) });
  const logger = pino(
    {
      level,
      base: { pid: process.pid, ...bindings },
      formatters: {},
      serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
    },
    destination as Parameters<typeof pino>[1],
  );
  return logger as unknown as Logger;
}

function envLevel(): LogLevel | undefined {
  const value = process.env.ZEROLOSS_LOG_LEVEL;
  return value === 'debug' || value === 'info' || value === 'warn' || value === 'error' || value === 'silent' ? value : undefined;
}
