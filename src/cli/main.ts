import { classifyError } from '../core/errors.ts';
import { demoCommand } from './commands/demo.ts';
import { dlqCommand } from './commands/dlq.ts';
import { doctorCommand } from './commands/doctor.ts';
import { migrateCommand } from './commands/migrate.ts';
import { relayCommand } from './commands/relay.ts';
import { topicsCommand } from './commands/topics.ts';
import { backlogCommand } from './commands/backlog.ts';
import { cleanupCommand } from './commands/cleanup.ts';
import { parkedCommand } from './commands/parked.ts';
import { reconcileCommand } from './commands/reconcile.ts';
import { resendCommand } from './commands/resend.ts';
import { serveCommand } from './commands/serve.ts';
import { statusCommand } from './commands/status.ts';
import { traceCommand } from './commands/trace.ts';

type Command = (argv: string[]) => Promise<number>;

/** Every command lives in its own file; this table is the whole CLI. */
const commands: Record<string, { run: Command; summary: string }> = {
  demo: { run: demoCommand, summary: 'run an example system under faults and count lost / applied twice (start here)' },
  migrate: { run: migrateCommand, summary: 'create/update zeroloss tables in a Postgres schema' },
  relay: { run: relayCommand, summary: 'send committed outbox rows to Kafka (with compensation)' },
  topics: { run: topicsCommand, summary: 'topics ensure <topic> --partitions N: create with the durability profile' },
  doctor: { run: doctorCommand, summary: 'check topics and producer settings against the durability profile' },
  dlq: { run: dlqCommand, summary: 'dead letters: list | show | replay | discard' },
  status: { run: statusCommand, summary: 'outbox backlog, parked rows, lag per group and partition, alarms' },
  reconcile: { run: reconcileCommand, summary: 'compare outbox, broker and consumer inboxes by message id; --repair' },
  trace: { run: traceCommand, summary: "trace <message-id>: a message's whole life and where it stops" },
  resend: { run: resendCommand, summary: 're-publish from the outbox by time range or ids (broker lost data)' },
  parked: { run: parkedCommand, summary: 'parked rows and dead letters: list | release | discard (audited)' },
  backlog: { run: backlogCommand, summary: 'raise partitions, forward a backlog, divert types to a standby topic' },
  cleanup: { run: cleanupCommand, summary: 'delete outbox/inbox rows past retention, in batches' },
  serve: { run: serveCommand, summary: 'Prometheus /metrics for the schema, scheduled reconciliation' },
};

export const mainHelp = () => `zeroloss — no committed message lost; each message's effect applied exactly once
(delivery is at-least-once; duplicates are absorbed by the consumer's inbox).

Usage: zeroloss <command> [options]    (zeroloss <command> --help for details)

${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join('\n')}`;

export function registerCommand(name: string, run: Command, summary: string): void {
  commands[name] = { run, summary };
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(mainHelp());
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    console.error(`zeroloss: unknown command ${JSON.stringify(name)}\n\n${mainHelp()}`);
    return 2;
  }
  try {
    return await command.run(rest);
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
