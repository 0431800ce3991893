import { setFlagsFromString } from 'node:v8';
import { classifyError } from '../core/errors.ts';

type Command = (argv: string[]) => Promise<number>;

/**
 * Every command lives in its own file; this table is the whole CLI. A command's module is imported only
 * when it runs: `relay` is a long-lived process, and loading every other command with it (PGlite, the
 * demo, the operations tools) cost it memory for its whole life.
 */
const commands: Record<string, { load: () => Promise<Command>; summary: string; longRunning?: boolean }> = {
  demo: {
    load: async () => (await import('./commands/demo.ts')).demoCommand,
    summary: 'run an example system under faults and count lost / applied twice (start here)',
  },
  migrate: {
    load: async () => (await import('./commands/migrate.ts')).migrateCommand,
    summary: 'create/update zeroloss tables in a Postgres schema',
  },
  relay: {
    load: async () => (await import('./commands/relay.ts')).relayCommand,
    summary: 'send committed outbox rows to Kafka (with compensation)',
    longRunning: true,
  },
  topics: {
    load: async () => (await import('./commands/topics.ts')).topicsCommand,
    summary: 'topics ensure <topic> --partitions N: create with the durability profile',
  },
  groups: {
    load: async () => (await import('./commands/groups.ts')).groupsCommand,
    summary: "groups delete <group> --topic T: delete a finished group's offsets (broker and schema)",
  },
  doctor: {
    load: async () => (await import('./commands/doctor.ts')).doctorCommand,
    summary: 'check topics and producer settings against the durability profile',
  },
  dlq: { load: async () => (await import('./commands/dlq.ts')).dlqCommand, summary: 'dead letters: list | show | replay | discard' },
  status: {
    load: async () => (await import('./commands/status.ts')).statusCommand,
    summary: 'outbox backlog, parked rows, lag per group and partition, alarms',
  },
  reconcile: {
    load: async () => (await import('./commands/reconcile.ts')).reconcileCommand,
    summary: 'compare outbox, broker and consumer inboxes by message id; --repair; --held, --approve <run>',
  },
  trace: {
    load: async () => (await import('./commands/trace.ts')).traceCommand,
    summary: "trace <message-id>: a message's whole life and where it stops",
  },
  resend: {
    load: async () => (await import('./commands/resend.ts')).resendCommand,
    summary: 're-publish from the outbox by time range or ids (broker lost data)',
  },
  parked: {
    load: async () => (await import('./commands/parked.ts')).parkedCommand,
    summary: 'parked rows and dead letters: list | release | discard (audited)',
  },
  backlog: {
    load: async () => (await import('./commands/backlog.ts')).backlogCommand,
    summary: 'raise partitions, forward a backlog, divert types to a standby topic',
  },
  cleanup: {
    load: async () => (await import('./commands/cleanup.ts')).cleanupCommand,
    summary: 'delete outbox/inbox rows past retention, in batches',
  },
  serve: {
    load: async () => (await import('./commands/serve.ts')).serveCommand,
    summary: 'Prometheus /metrics for the schema, scheduled reconciliation',
  },
};

export const mainHelp = () => `zeroloss — no committed message lost; each message's effect applied exactly once
(delivery is at-least-once; duplicates are absorbed by the consumer's inbox).

Usage: zeroloss <command> [options]    (zeroloss <command> --help for details; zeroloss help kafka for TLS/SASL)

${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join('\n')}`;

export function registerCommand(name: string, run: Command, summary: string): void {
  commands[name] = { load: async () => run, summary };
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === 'help' && rest[0] === 'kafka') {
    const { kafkaSecurityHelp } = await import('./kafka-connection-options.ts');
    console.log(`Reaching a secured Kafka (every command that takes --kafka):\n\n${kafkaSecurityHelp}`);
    return 0;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(mainHelp());
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    console.error(`zeroloss: unknown command ${JSON.stringify(name)}\n\n${mainHelp()}`);
    return 2;
  }
  // A long-running command favours memory over speed. By default V8 grows the young generation to two
  // 64 MB semi-spaces under the relay's allocation rate and keeps them: the relay held 322 MB RSS draining
  // a backlog and 128 MB idle; with this flag 107 MB and 98 MB at the same throughput (docs/benchmarks.md,
  // relay-memory). V8 reads this flag as it sizes the heap, so setting it here, before the command's
  // modules load, takes effect; a startup flag would need NODE_OPTIONS or a shebang not every shell parses.
  if (command.longRunning) setFlagsFromString('--optimize-for-size');
  try {
    const run = await command.load();
    return await run(rest);
  } catch (error) {
    const e = classifyError(error);
    console.error(`zeroloss ${name}: ${e.code}: ${e.message}`);
    return e.code === 'ZL_INVALID_CONFIG' ? 2 : 1;
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
