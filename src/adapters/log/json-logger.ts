import type { LogFields, Logger } from '../../ports/logger.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

/** How a line is written: one JSON object (for collectors), or a short readable line (for a terminal). */
export type LogFormat = 'json' | 'pretty';

/** pino's numeric levels, so lines read the same with or without pino installed. */
const LEVELS = { debug: 20, info: 30, warn: 40, error: 50, silent: Number.POSITIVE_INFINITY } as const;
const LEVEL_NAMES: Record<number, string> = { 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR' };

export interface JsonLoggerOptions {
  level: LogLevel;
  write: (line: string) => void;
  bindings?: LogFields;
  /** Default 'json'. */
  format?: LogFormat;
  /** Field paths (`key`, `details.card`) whose values are replaced by `[redacted]` on every line. */
  redact?: readonly string[];
}

/**
 * One JSON object per line, pino's shape (`level`, `time`, `msg`, bound and given fields): what the default
 * logger writes when pino is not installed, or when a terminal asks for readable lines. Errors in fields are
 * written as { type, message, stack, code }.
 */
export function jsonLogger(options: JsonLoggerOptions): Logger {
  const threshold = LEVELS[options.level];
  const bindings = options.bindings ?? {};
  const redact = (options.redact ?? []).map((path) => path.split('.'));
  const format = options.format === 'pretty' ? prettyLine : jsonLine;
  const line = (level: number, fields: LogFields, message: string): void => {
    if (level < threshold) return;
    let record: LogFields = { level, time: Date.now(), pid: process.pid, ...bindings };
    for (const [name, value] of Object.entries(fields)) record[name] = value instanceof Error ? serializeError(value) : value;
    record.msg = message;
    for (const path of redact) record = censor(record, path);
    options.write(format(record));
  };
  return {
    debug: (fields, message) => line(LEVELS.debug, fields, message),
    info: (fields, message) => line(LEVELS.info, fields, message),
    warn: (fields, message) => line(LEVELS.warn, fields, message),
    error: (fields, message) => line(LEVELS.error, fields, message),
    child: (more) => jsonLogger({ ...options, bindings: { ...bindings, ...more } }),
  };
}

function jsonLine(record: LogFields): string {
  return `${JSON.stringify(record, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`;
}

/**
 * `12:00:01.123 WARN  relay: send failed: will retry  messageId=… topic=orders` — the time (UTC), level,
 * component, message, then the remaining fields as name=value; an error's stack on the lines below.
 */
export function prettyLine(record: LogFields): string {
  const { level, time, pid: _pid, component, msg, ...rest } = record;
  const at = new Date(typeof time === 'number' ? time : Date.now()).toISOString().slice(11, 23);
  const name = (LEVEL_NAMES[level as number] ?? String(level)).padEnd(5);
  let stack = '';
  const pairs: string[] = [];
  for (const [key, value] of Object.entries(rest)) {
    if (value === undefined) continue;
    const error = value as { stack?: unknown; message?: unknown; code?: unknown };
    if (value !== null && typeof value === 'object' && typeof error.stack === 'string' && typeof error.message === 'string') {
      pairs.push(`${key}=${JSON.stringify(error.code ? `${error.code}: ${error.message}` : error.message)}`);
      stack = `\n    ${error.stack.split('\n').slice(1).join('\n    ').trim()}`;
      continue;
    }
    pairs.push(
      `${key}=${typeof value === 'string' && /^[\w.:/@-]+$/.test(value) ? value : JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}`,
    );
  }
  return `${at} ${name} ${component ? `${component}: ` : ''}${msg}${pairs.length ? `  ${pairs.join(' ')}` : ''}${stack}\n`;
}

/** The record with the value at `path` replaced; objects along the path are copied, never the caller's mutated. */
function censor(record: LogFields, path: string[]): LogFields {
  const [head, ...tail] = path as [string, ...string[]];
  if (!Object.hasOwn(record, head)) return record;
  const value = record[head];
  if (tail.length === 0) return { ...record, [head]: '[redacted]' };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return record;
  return { ...record, [head]: censor(value as LogFields, tail) };
}

function serializeError(error: Error): LogFields {
  return { type: error.name, message: error.message, stack: error.stack, code: (error as { code?: unknown }).code };
}
