import { cleanup } from '../../operations/retention.ts';
import { parseDuration } from '../../operations/time-window.ts';
import { connectionOptions, intOption, parse, print } from '../args.ts';
import { withOps } from '../ops-context.ts';

export const cleanupHelp = `Usage: zeroloss cleanup --pg <url> [options]

Deletes what is past retention, in small batches (one short statement each, skipping rows another
transaction holds, with a pause between batches) so the business database keeps its room:

  sent outbox rows and their transitions   older than --outbox (by commit and send time); unsent rows —
                                           pending, failed, parked — are never deleted
  inbox rows                               older than --inbox, which must exceed --replay-horizon
  dead letters a person resolved           older than --dead-letters; open ones are never deleted
  reconciliation runs, sequence alarms     older than --history
  (the audit is never deleted)

  --outbox <duration>          default 14d; keep it longer than the topics' retention, so a message the
                               broker lost can still be resent from the outbox
  --inbox <duration>           default 14d
  --replay-horizon <duration>  the oldest message that can come back (topic retention, replays); default 7d
  --dead-letters <duration>    default 30d
  --history <duration>         default 30d
  --batch-size <n>             rows per statement (default 1000)
  --pause <duration>           between batches (default 20ms)
  --pg <url>, --schema <name>, --json`;

export async function cleanupCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...connectionOptions,
    outbox: { type: 'string' },
    inbox: { type: 'string' },
    'replay-horizon': { type: 'string' },
    'dead-letters': { type: 'string' },
    history: { type: 'string' },
    'batch-size': { type: 'string' },
    pause: { type: 'string' },
  });
  if (values.help) {
    console.log(cleanupHelp);
    return 0;
  }
  const d = (v: string | undefined) => (v === undefined ? undefined : parseDuration(v));
  const history = d(values.history);
  const result = await withOps(values, 'none', (ops) =>
    cleanup(
      { store: ops.store },
      {
        outboxMs: d(values.outbox),
        inboxMs: d(values.inbox),
        replayHorizonMs: d(values['replay-horizon']),
        resolvedDeadLettersMs: d(values['dead-letters']),
        reconcileRunsMs: history,
        sequenceAlarmsMs: history,
        batchSize: values['batch-size'] === undefined ? undefined : intOption(values['batch-size'], 'batch-size', 1000),
        pauseMs: d(values.pause),
      },
    ),
  );
  print(
    values.json,
    result,
    () =>
      `cleanup: deleted ${Object.entries(result)
        .map(([t, n]) => `${t} ${n}`)
        .join(', ')}`,
  );
  return 0;
}
