import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WorkerReport } from './consumer-worker.ts';

const CLI = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const WORKER = fileURLToPath(new URL('./consumer-worker.ts', import.meta.url));
const TRANSACTIONAL_WORKER = fileURLToPath(new URL('./transactional-worker.ts', import.meta.url));
const BROKEN_RELAY = fileURLToPath(new URL('./broken-relay.ts', import.meta.url));
const RELAY_WORKER = fileURLToPath(new URL('./relay-worker.ts', import.meta.url));
const BROKEN_WAL_RELAY = fileURLToPath(new URL('./wal-relay-confirm-before-send.ts', import.meta.url));
const COMPILE_CACHE = path.join(tmpdir(), 'zeroloss-faults-compile-cache');

/** Every child started here, so a run that is interrupted or crashes leaves none behind. */
const live = new Set<ChildProcess>();

export function killAllChildren(): void {
  for (const child of live) child.kill('SIGKILL');
  live.clear();
}

process.on('exit', killAllChildren);

interface Member {
  name: string;
  child: ChildProcess | undefined;
  log: string;
}

/**
 * A set of named child processes the nemesis can SIGKILL at any instant. Every member is kept running:
 * one we killed is started again by the caller (killAndRestart), one that died on its own (a poison
 * message, a crash) is restarted here after a short pause, and counted, so the report can tell them apart.
 */
export class ProcessGroup {
  readonly kind: string;
  readonly #command: (name: string) => string[];
  readonly #env: Record<string, string>;
  readonly #members = new Map<string, Member>();
  readonly #killing = new Set<ChildProcess>();
  #closed = false;
  starts = 0;
  kills = 0;
  /** Exits we did not cause. */
  deaths = 0;
  readonly errors: string[] = [];
  readonly #onReport: ((report: WorkerReport) => void) | undefined;
  readonly #onStart: ((name: string) => void) | undefined;
  readonly #onLine: ((name: string, line: string) => void) | undefined;

  constructor(options: {
    kind: string;
    /** The same for every member, or per member (the one WAL relay that creates the slot). */
    command: string[] | ((name: string) => string[]);
    env: Record<string, string>;
    names: string[];
    ipc?: boolean;
    onReport?: (report: WorkerReport) => void;
    /** A member was (re)started: whatever it said before is no longer true. */
    onStart?: (name: string) => void;
    /** Each whole line a member writes (stdout or stderr). */
    onLine?: (name: string, line: string) => void;
  }) {
    this.kind = options.kind;
    const command = options.command;
    this.#command = typeof command === 'function' ? command : () => command;
    this.#env = options.env;
    this.#onReport = options.onReport;
    this.#onStart = options.onStart;
    this.#onLine = options.onLine;
    for (const name of options.names) this.#members.set(name, { name, child: undefined, log: '' });
  }

  get names(): string[] {
    return [...this.#members.keys()];
  }

  startAll(): void {
    for (const m of this.#members.values()) this.#start(m);
  }

  #alive(child: ChildProcess | undefined): child is ChildProcess {
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  #start(m: Member): void {
    if (this.#closed || this.#alive(m.child)) return;
    const child = spawn(process.execPath, this.#command(m.name), {
      // The compile cache makes the many restarts of a kill scenario cheaper on a busy machine.
      env: { NODE_COMPILE_CACHE: COMPILE_CACHE, ...process.env, ...this.#env, ZL_FX_WORKER: m.name },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const lineReader = () => {
      let partial = '';
      return (chunk: Buffer) => {
        const text = chunk.toString();
        m.log = (m.log + text).slice(-8_000);
        if (!this.#onLine) return;
        const lines = (partial + text).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) this.#onLine(m.name, line);
      };
    };
    child.stdout?.on('data', lineReader());
    child.stderr?.on('data', lineReader());
    child.on('message', (report: WorkerReport) => {
      if (report.kind === 'error' && this.errors.length < 100) this.errors.push(`${m.name}: ${report.message}`);
      this.#onReport?.(report);
    });
    child.on('error', () => {});
    live.add(child);
    child.once('exit', () => {
      live.delete(child);
      if (this.#killing.delete(child) || this.#closed || m.child !== child) return;
      this.deaths++;
      // A supervisor's restart; the pause keeps a crash loop from spinning.
      setTimeout(() => this.#start(m), 300).unref();
    });
    m.child = child;
    this.starts++;
    this.#onStart?.(m.name);
  }

  /** SIGKILL one member, wait until it is gone, and start it again. */
  async killAndRestart(name: string): Promise<void> {
    const m = this.#members.get(name);
    if (!m) throw new Error(`no ${this.kind} ${name}`);
    const child = m.child;
    if (this.#alive(child)) {
      this.#killing.add(child);
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      this.kills++;
      await exited;
    }
    this.#start(m);
  }

  /**
   * SIGSTOP one member and SIGCONT it after `frozenMs` (a zombie: a GC pause, a VM migration, a debugger):
   * it keeps its connections and whatever it held when stopped, and wakes up believing no time has passed.
   * Returns false when the member was not running.
   */
  async freeze(name: string, frozenMs: number, pause: (ms: number) => Promise<void>): Promise<boolean> {
    const m = this.#members.get(name);
    if (!m) throw new Error(`no ${this.kind} ${name}`);
    const child = m.child;
    if (!this.#alive(child)) return false;
    child.kill('SIGSTOP');
    try {
      await pause(frozenMs);
    } finally {
      if (this.#alive(child)) child.kill('SIGCONT');
    }
    return true;
  }

  /** SIGTERM everyone (graceful stop), SIGKILL whoever takes longer than `timeoutMs`. */
  async stopAll(timeoutMs = 15_000): Promise<void> {
    this.#closed = true;
    await Promise.all(
      [...this.#members.values()].map(async (m) => {
        const child = m.child;
        if (!this.#alive(child)) return;
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  /** The member's process id while it runs. */
  pid(name: string): number | undefined {
    const child = this.#members.get(name)?.child;
    return this.#alive(child) ? child.pid : undefined;
  }

  logs(): string {
    return [...this.#members.values()].map((m) => `--- ${this.kind} ${m.name}\n${m.log.slice(-3_000)}`).join('\n');
  }
}

/**
 * Arguments of the real `zeroloss relay` command with short leases, backoff and idle interval, so faults
 * resolve in seconds. The lease must outlast one send (the delivery timeout); a killed relay's rows come
 * back after it.
 */
export function fastRelayArgs(options: { pgUrl: string; schema: string; brokers: string[]; leaseMs: number; deliveryTimeoutMs: number }) {
  return ['relay', '--pg', options.pgUrl, '--schema', options.schema, '--kafka', options.brokers.join(','), ...relayTuningArgs(options)];
}

/** The timing and batch flags of fastRelayArgs, which faults/relay-worker.ts takes too. */
export function relayTuningArgs(options: { leaseMs: number; deliveryTimeoutMs: number }): string[] {
  return [
    '--lease-ms',
    String(options.leaseMs),
    '--delivery-timeout-ms',
    String(options.deliveryTimeoutMs),
    '--backoff-base-ms',
    '100',
    '--backoff-max-ms',
    '2000',
    '--idle-interval-ms',
    '1000',
    '--batch-size',
    '200',
  ];
}

/**
 * Relays: the real `zeroloss relay` command (fastRelayArgs), or with `brokenRelay` the suite's
 * deliberately broken relay (broken-relay.ts, with that fault) taking the same flags. On Redis Streams, RabbitMQ
 * and the table log (`transport`), faults/relay-worker.ts: the same createRelay over that transport's bundle
 * (or broken-relay.ts with relay-worker's flags).
 *
 * With `wal`, `zeroloss relay --mode wal` (or with `confirmBeforeSend` the deliberately broken
 * wal-relay-confirm-before-send.ts, same flags): relay-1 runs with `--create-slot`, as the operator's one
 * instance that creates the slot (it finds it there after a restart); the others only ever wait for it
 * and stand by while another reads it.
 */
export function relayGroup(options: {
  count: number;
  pgUrl: string;
  schema: string;
  brokers: string[];
  brokenRelay?: 'relay-ack-before-send' | 'claim-without-key-hold';
  transport?: { kind: 'redis' | 'rabbitmq' | 'table-log'; url: string };
  wal?: { confirmBeforeSend: boolean; insertOnly?: boolean };
  /** The state-column source: the relays relay the settings file's declared sources only (Kafka, polling). */
  settingsFile?: string;
  onStart?: (name: string) => void;
  onLine?: (name: string, line: string) => void;
}) {
  const timing = { leaseMs: 5_000, deliveryTimeoutMs: 4_000 };
  const { transport, wal } = options;
  const names = Array.from({ length: options.count }, (_, i) => `relay-${i + 1}`);
  const hooks = { onStart: options.onStart, onLine: options.onLine };
  if (wal) {
    const base = [wal.confirmBeforeSend ? BROKEN_WAL_RELAY : CLI, ...fastRelayArgs({ ...options, ...timing }), '--mode', 'wal'];
    return new ProcessGroup({
      kind: 'relay',
      names,
      env: {},
      command: (name) => (name === names[0] ? [...base, '--create-slot', ...(wal.insertOnly ? ['--insert-only'] : [])] : base),
      ...hooks,
    });
  }
  const command = transport
    ? [
        // The broken relay takes relay-worker's transport flags too (ack-before-send on every transport).
        options.brokenRelay ? BROKEN_RELAY : RELAY_WORKER,
        '--pg',
        options.pgUrl,
        '--schema',
        options.schema,
        '--transport',
        transport.kind,
        '--url',
        transport.url,
        ...relayTuningArgs(timing),
      ]
    : [
        options.brokenRelay ? BROKEN_RELAY : CLI,
        ...fastRelayArgs({ ...options, ...timing }),
        ...(options.brokenRelay === 'claim-without-key-hold' ? ['--fault', 'claim-without-key-hold'] : []),
        ...(options.settingsFile ? ['--config-file', options.settingsFile, '--only-sources'] : []),
      ];
  return new ProcessGroup({ kind: 'relay', names, env: {}, command, ...hooks });
}

/**
 * Consumers: faults/consumer-worker.ts processes in one consumer group, or with `transactional` the
 * Kafka-transactions processors of faults/transactional-worker.ts.
 */
export function consumerGroup(options: {
  count: number;
  env: Record<string, string>;
  transactional?: boolean;
  onReport?: (report: WorkerReport) => void;
}) {
  return new ProcessGroup({
    kind: 'consumer',
    names: Array.from({ length: options.count }, (_, i) => `consumer-${i + 1}`),
    env: options.env,
    command: [options.transactional ? TRANSACTIONAL_WORKER : WORKER],
    onReport: options.onReport,
  });
}
