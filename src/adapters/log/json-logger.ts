import type { LogFields, Logger } from '../../ports/logger.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

/** pino's numeric levels, so lines read the same with or without pino installed. */
const LEVELS = { debug: 20, info: 30, warn: 40, error: 50, silent: Number.POSITIVE_INFINITY } as const;

/**
 * One JSON object per line, pino's shape (`level`, `time`, `msg`, bound and given fields): what the default
 * logger writes when pino is not installed. Errors in fields are written as { type, message, stack, code }.
 */
export function jsonLogger(options: { level: LogLevel; write: (line: string) => void; bindings?: LogFields }): Logger {
  const threshold = LEVELS[options.level];
  const bindings = options.bindings ?? {};
  const line = (level: number, fields: LogFields, message: string): void => {
    if (level < threshold) return;
    const record: LogFields = { level, time: Date.now(), pid: process.pid, ...bindings };
    for (const [name, value] of Object.entries(fields)) record[name] = value instanceof Error ? serializeError(value) : value;
    record.msg = message;
    options.write(`${JSON.stringify(record, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
  };
  return {
    debug: (fields, message) => line(LEVELS.debug, fields, message),
    info: (fields, message) => line(LEVELS.info, fields, message),
    warn: (fields, message) => line(LEVELS.warn, fields, message),
    error: (fields, message) => line(LEVELS.error, fields, message),
    child: (more) => jsonLogger({ ...options, bindings: { ...bindings, ...more } }),
  };
}

function serializeError(error: Error): LogFields {
  return { type: error.name, message: error.message, stack: error.stack, code: (error as { code?: unknown }).code };
}
