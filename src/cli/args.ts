import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ZerolossError } from '../core/errors.ts';
import { kafkaSecurityOptions } from './kafka-connection-options.ts';

export type Options = NonNullable<ParseArgsConfig['options']>;

/** Shared connection flags; every command reads the same names and environment variables. */
export const connectionOptions = {
  pg: { type: 'string' },
  schema: { type: 'string' },
  kafka: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  // Every command that may reach Kafka reaches a secured one the same way (TLS, SASL, --config-file).
  ...kafkaSecurityOptions,
} as const satisfies Options;

export function parse<O extends Options>(argv: string[], options: O) {
  // `--config <file>` is what people type (and what the issue and docs of peers say) for the settings file;
  // where a command has no `--config` of its own (topics does: topic configs), it means `--config-file`.
  const args = 'config-file' in options && !('config' in options) ? argv.map(configAlias) : argv;
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new ZerolossError('ZL_INVALID_CONFIG', (error as Error).message);
  }
}

function configAlias(arg: string): string {
  if (arg === '--config') return '--config-file';
  return arg.startsWith('--config=') ? `--config-file=${arg.slice('--config='.length)}` : arg;
}

export function pgUrl(value: string | undefined): string {
  const url = value ?? process.env.ZEROLOSS_PG_URL;
  if (!url) throw new ZerolossError('ZL_INVALID_CONFIG', 'no database: pass --pg <url> or set ZEROLOSS_PG_URL');
  return withDefaultUser(url);
}

/**
 * A postgres:// URL without a user name would connect as $USER, which a container or CI job may not
 * have (the server then refuses a startup packet without a user). Such a URL connects as $PGUSER, or
 * else as `postgres`.
 */
export function withDefaultUser(url: string): string {
  if (!/^postgres(ql)?:\/\//i.test(url)) return url;
  try {
    const parsed = new URL(url);
    if (parsed.username || !parsed.hostname) return url;
    parsed.username = process.env.PGUSER || 'postgres';
    return parsed.toString();
  } catch {
    return url;
  }
}

export function kafkaBrokers(value: string | undefined): string[] {
  const list = value ?? process.env.ZEROLOSS_KAFKA_BROKERS;
  if (!list) throw new ZerolossError('ZL_INVALID_CONFIG', 'no Kafka: pass --kafka <host:port,...> or set ZEROLOSS_KAFKA_BROKERS');
  return list
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
}

export function intOption(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new ZerolossError('ZL_INVALID_CONFIG', `--${name} must be a non-negative integer`);
  return n;
}

export function print(json: boolean | undefined, value: unknown, text: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n` : `${text()}\n`);
}
