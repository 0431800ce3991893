import { ZerolossError } from '../../core/errors.ts';
import type { Logger } from '../../ports/logger.ts';
import { jsonLogger, type LogFormat, type LogLevel } from './json-logger.ts';
import { loadPino } from './pino-driver.ts';

export interface DefaultLoggerOptions {
  /** Lowest level written; default `ZEROLOSS_LOG_LEVEL` or 'info'. */
  level?: LogLevel;
  /** Where lines go; default stdout. Anything with `write(line)` (a file stream, a test's capture). */
  destination?: { write(line: string): unknown; isTTY?: boolean };
  /** Fields on every line, e.g. { component: 'relay' }. */
  bindings?: Record<string, unknown>;
  /**
   * 'json' (one object per line) or 'pretty' (a readable line); default `ZEROLOSS_LOG_FORMAT`, else pretty
   * when the destination is a terminal and JSON otherwise — so a collector never gets anything but JSON.
   */
  format?: LogFormat;
  /** Field paths replaced by `[redacted]` on every line (`key`, `details.card`); default `ZEROLOSS_LOG_REDACT` (comma-separated). */
  redact?: readonly string[];
}

/**
 * The logger of zeroloss's own processes: pino when it is installed (an optional peer), else the same JSON
 * lines written directly, so the CLI logs alike either way. In a terminal it writes readable lines instead
 * (pino-pretty's job, without depending on it).
 */
export function defaultLogger(options: DefaultLoggerOptions = {}): Logger {
  const level = options.level ?? envLevel() ?? 'info';
  const destination = options.destination ?? process.stdout;
  const bindings = options.bindings ?? {};
  const format = options.format ?? envFormat() ?? (destination.isTTY ? 'pretty' : 'json');
  const redact = options.redact ?? envRedact();
  const pino = format === 'json' ? loadPino() : undefined;
  if (pino === undefined) return jsonLogger({ level, bindings, format, redact, write: (line) => destination.write(line) });
  const logger = pino(
    {
      level,
      base: { pid: process.pid, ...bindings },
      formatters: {},
      serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
      ...(redact.length > 0 ? { redact: { paths: [...redact], censor: '[redacted]' } } : {}),
    },
    destination as Parameters<typeof pino>[1],
  );
  return logger as unknown as Logger;
}

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];
const FORMATS: readonly LogFormat[] = ['json', 'pretty'];

// A misspelt setting is refused rather than ignored: `ZEROLOSS_LOG_LEVEL=verbose` silently logging at info
// would hide exactly the lines the operator asked for.
function envLevel(): LogLevel | undefined {
  return envChoice('ZEROLOSS_LOG_LEVEL', LEVELS);
}

function envFormat(): LogFormat | undefined {
  return envChoice('ZEROLOSS_LOG_FORMAT', FORMATS);
}

function envChoice<T extends string>(name: string, choices: readonly T[]): T | undefined {
  const value = process.env[name];
  if (value === undefined || value === '') return undefined;
  if ((choices as readonly string[]).includes(value)) return value as T;
  throw new ZerolossError('ZL_INVALID_CONFIG', `${name} must be one of ${choices.join(', ')}, not ${JSON.stringify(value)}`);
}

function envRedact(): string[] {
  return (process.env.ZEROLOSS_LOG_REDACT ?? '')
    .split(',')
    .map((path) => path.trim())
    .filter((path) => path !== '');
}
