import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { cpus, release, totalmem, type } from 'node:os';
import { LIBS_DIR } from '../infra/kafka/kafka.ts';
import type { ScenarioResult } from './run-scenario.ts';

export interface RunReport {
  command: string;
  seed: number;
  messages: number;
  keys: number;
  transport: string;
  /** 'poll' (the polling relay) or 'wal' (the WAL relay). */
  relayMode: string;
  kafka: string;
  /** The run's Redis or RabbitMQ broker, when the transport is not Kafka. */
  broker: string;
  broken: string | null;
  machine: Record<string, string>;
  startedAt: string;
  totalSeconds: number;
  pass: boolean;
  scenarios: ScenarioResult[];
}

const COLUMNS = [
  'committed',
  'onTopic',
  'topicDuplicates',
  'effects',
  'lost',
  'appliedTwice',
  'phantom',
  'orderViolations',
  'deadLettered',
  'recoverySeconds',
] as const;

/** The figures as a Markdown table (readable in a terminal, pasteable into docs). */
export function table(results: ScenarioResult[]): string {
  const header = ['scenario', ...COLUMNS, 'seconds', 'result'];
  const rows = results.map((r) => [
    r.scenario,
    ...COLUMNS.map((c) => String(r.figures[c])),
    String(r.durationSeconds),
    r.pass ? 'pass' : `FAIL: ${r.failures.join('; ')}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 || i === widths.length - 1 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** First line a command prints (stdout or stderr: `java -version` uses stderr), or '?'. */
function version(command: string, args: string[]): string {
  const out = spawnSync(command, args, { encoding: 'utf8', timeout: 5_000 });
  return `${out.stdout ?? ''}${out.stderr ?? ''}`.trim().split('\n')[0] || '?';
}

/** What the figures were measured on. */
export function machine(postgresVersion: string): Record<string, string> {
  const cpu = cpus();
  let kafkaJar = '?';
  try {
    kafkaJar = readdirSync(LIBS_DIR).find((f) => /^kafka_2\.13-.*\.jar$/.test(f)) ?? '?';
  } catch {
    // no jars: left as '?'
  }
  return {
    cpus: `${cpu.length} x ${cpu[0]?.model ?? '?'}`,
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    os: `${type()} ${release()}`,
    node: process.version,
    kafka: kafkaJar.replace(/^kafka_2\.13-/, '').replace(/\.jar$/, ''),
    java: version('java', ['-version']),
    postgres: postgresVersion,
    redis: version('redis-server', ['--version']),
    rabbitmq: version('dpkg-query', ['-W', 'rabbitmq-server']).replace(/^rabbitmq-server\s+/, ''),
  };
}
