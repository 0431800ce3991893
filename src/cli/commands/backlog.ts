import { PostgresBacklogStore } from '../../adapters/postgres/postgres-backlog-store.ts';
import { ZerolossError } from '../../core/errors.ts';
import { divert, type ForwardResult, forwardAgain, forwardBacklog, raisePartitions, undivert } from '../../operations/backlog.ts';
import { setDegrade } from '../../operations/degrade-switches.ts';
import { connectionOptions, intOption, parse, print } from '../args.ts';
import { brokerHelp, brokerOptions, withOps } from '../ops-context.ts';

export const backlogHelp = `Usage: zeroloss backlog <action> [options] --pg <url> --kafka <brokers>

Tools for a backlog (consumer lag). None changes what a consumer applies: every copy keeps its message id,
so each group's inbox still applies a message once whichever copy it sees. See 'zeroloss status' for lag.

  partitions <topic> --count <n>   raise the partition count so more consumers can work at once. Keys hash
                                   over the new count: a key's new messages may land on another partition,
                                   so per-key order holds again once the old partitions are drained
  forward --from <topic> --to <topic> --group <group> [--partitions <n>] [--advance]
                                   copy the group's backlog (from its committed offsets to the current end)
                                   to a topic with more partitions (created with --partitions, default 2x),
                                   then run the group's consumers on both topics. --advance moves the
                                   group's offsets on --from past the copied records (only while the group
                                   has no live members). Per-key order holds within each topic only.
                                   Each run is recorded (ranges, target, count) before it copies
  forward --again <run> [--to <topic>]
                                   copy a recorded run's ranges again (to its target, or --to), e.g. after
                                   the target lost them; consumers' inboxes skip what they applied before.
                                   Records the source no longer holds are counted: resend those from the outbox
  forwards [--from <topic>] [--limit <n>]
                                   list recorded forward runs, newest first (default 20)
  divert --topic <topic> --type <type,...|*> --to <topic> [--move-unsent]
                                   send messages of these types enqueued for --topic to --to from now on
                                   (applied in the enqueue transaction; --to is created if missing); a
                                   state-column source's messages follow it when built at their first claim;
                                   --move-unsent moves the unsent outbox rows too. Consumers of --topic
                                   will report sequence gaps for diverted keys; reconcile shows they are not losses
  undivert --topic <topic> --type <type,...|*>
                                   end diverts; rows already diverted stay where they are
  diverts                          list the divert rules

  degrade <switch> on|off --reason <text>
                                   turn a named degrade switch on or off (audited). Handlers read switches
                                   through DegradeSwitches to skip optional work; consumers with 'defer'
                                   rules send listed non-core types to a standby topic while a switch is on,
                                   to be drained later (docs/operations.md, "Backlog and degrading at peak")
  switches                         list the switches, who set them, when and why
                                   ('zeroloss serve --degrade-group …' turns them on and off by lag)

  --reason <text>, --actor <name>  recorded in the audit
  --pg <url>, --schema <name>, --kafka <brokers>, --json
${brokerHelp}

Kafka with TLS or SASL: --kafka-tls, --kafka-ca <file>, --kafka-sasl <mechanism>, --kafka-username,
--kafka-password-file <file>, --config-file <file.json> … (all of them: zeroloss help kafka)`;

export async function backlogCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...connectionOptions,
    ...brokerOptions,
    count: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    group: { type: 'string' },
    partitions: { type: 'string' },
    advance: { type: 'boolean' },
    topic: { type: 'string' },
    type: { type: 'string', multiple: true },
    'move-unsent': { type: 'boolean' },
    reason: { type: 'string' },
    actor: { type: 'string' },
    again: { type: 'string' },
    limit: { type: 'string' },
  });
  const [action, ...rest] = positionals;
  if (values.help || !action) {
    console.log(backlogHelp);
    return values.help ? 0 : 2;
  }
  const who = { actor: values.actor, reason: values.reason };
  const required = (v: string | undefined, name: string): string => {
    if (!v) throw new ZerolossError('ZL_INVALID_CONFIG', `backlog ${action} needs --${name}`);
    return v;
  };
  const types = (values.type ?? [])
    .flatMap((t) => t.split(','))
    .map((t) => t.trim())
    .filter(Boolean);
  const databaseOnly = ['diverts', 'undivert', 'degrade', 'switches', 'forwards'].includes(action);
  return withOps(values, databaseOnly ? 'none' : 'required', async (ops) => {
    const audit = (e: Parameters<typeof ops.store.audit>[0]) => ops.store.audit(e);
    const log = new PostgresBacklogStore(ops.db, { schema: ops.schema });
    switch (action) {
      case 'partitions': {
        const topic = rest[0] ?? required(values.topic, 'topic');
        const r = await raisePartitions(
          { broker: ops.broker!, admin: ops.admin!, audit },
          topic,
          intOption(required(values.count, 'count'), 'count', 0),
          who,
        );
        print(values.json, r, () => `${r.topic}: ${r.before} → ${r.after} partitions`);
        return 0;
      }
      case 'forward': {
        const deps = { broker: ops.broker!, admin: ops.admin!, publisher: ops.publisher(), audit, log };
        let r: ForwardResult & { againOf?: string; goneAtSource?: number };
        if (values.again !== undefined) {
          const stray = (['from', 'group', 'partitions', 'advance'] as const).find((k) => values[k] !== undefined);
          if (stray) throw new ZerolossError('ZL_INVALID_CONFIG', `--again repeats a recorded run: --${stray} does not go with it`);
          r = await forwardAgain(deps, values.again, { to: values.to }, who);
        } else {
          const from = required(values.from, 'from');
          const current = (await ops.broker!.watermarks(from))?.length ?? 1;
          r = await forwardBacklog(
            deps,
            {
              from,
              to: required(values.to, 'to'),
              group: required(values.group, 'group'),
              partitions: intOption(values.partitions, 'partitions', current * 2),
              advance: values.advance ?? false,
            },
            who,
          );
        }
        print(values.json, r, () =>
          [
            `run ${r.run}${r.againOf ? ` (again of run ${r.againOf})` : ''}: forwarded ${r.forwarded} record(s) from ${r.from} to ${r.to}${r.created ? ' (created)' : ''}${r.advanced ? '; group offsets moved past them' : ''}`,
            ...r.ranges.map((x) => `  ${r.from}/${x.partition}: offsets ${x.from}..${x.to}`),
            ...(r.goneAtSource ? [`  ${r.goneAtSource} record(s) of the run are gone from ${r.from}: resend them from the outbox`] : []),
            ...(r.error ? [`  ERROR: ${r.error}`] : []),
          ].join('\n'),
        );
        return r.error ? 1 : 0;
      }
      case 'forwards': {
        const runs = await log.forwardRuns(intOption(values.limit, 'limit', 20), values.from);
        print(
          values.json,
          runs,
          () =>
            runs
              .map((x) =>
                [
                  `run ${x.id} ${x.startedAt.toISOString()} ${x.from} → ${x.to} group ${x.group}: ${x.forwarded}/${x.planned} record(s)${x.finishedAt ? '' : ' UNFINISHED'}${x.againOf ? `, again of run ${x.againOf}` : ''} by ${x.actor}${x.reason ? `: ${x.reason}` : ''}${x.error ? `\n  ERROR: ${x.error}` : ''}`,
                  ...x.ranges.map((g) => `  ${x.from}/${g.partition}: offsets ${g.from}..${g.to}`),
                ].join('\n'),
              )
              .join('\n') || 'no forward runs recorded',
        );
        return 0;
      }
      case 'degrade': {
        const [name, state] = rest;
        if (!name) {
          const all = await log.switches();
          print(values.json, all, () => formatSwitches(all));
          return 0;
        }
        if (state !== 'on' && state !== 'off') throw new ZerolossError('ZL_INVALID_CONFIG', 'backlog degrade <switch> on|off');
        const r = await setDegrade(log, name, state === 'on', who);
        print(values.json, r, () => `${r.switch.name} ${r.switch.on ? 'ON' : 'off'}${r.changed ? '' : ' (unchanged)'}`);
        return 0;
      }
      case 'switches': {
        const all = await log.switches();
        print(values.json, all, () => formatSwitches(all));
        return 0;
      }
      case 'divert': {
        if (types.length === 0) throw new ZerolossError('ZL_INVALID_CONFIG', 'backlog divert needs --type');
        const r = await divert(
          { store: ops.store, admin: ops.admin, broker: ops.broker },
          { topic: required(values.topic, 'topic'), types, target: required(values.to, 'to'), moveUnsent: values['move-unsent'] ?? false },
          who,
        );
        print(values.json, r, () =>
          [
            ...r.rules.map((x) => `${x.topic} [${x.type}] → ${x.target}`),
            `moved ${r.moved} unsent row(s)${r.createdTarget ? '; target topic created' : ''}`,
          ].join('\n'),
        );
        return 0;
      }
      case 'undivert': {
        if (types.length === 0) throw new ZerolossError('ZL_INVALID_CONFIG', 'backlog undivert needs --type');
        const removed = await undivert({ store: ops.store }, required(values.topic, 'topic'), types, who);
        print(values.json, { removed }, () => (removed.length ? `removed: ${removed.join(', ')}` : 'no such divert'));
        return removed.length > 0 ? 0 : 1;
      }
      case 'diverts': {
        const rules = await ops.store.divertRules();
        print(
          values.json,
          rules,
          () =>
            rules
              .map(
                (x) =>
                  `${x.topic} [${x.type}] → ${x.target}  (by ${x.createdBy} at ${x.createdAt.toISOString()}${x.reason ? `: ${x.reason}` : ''})`,
              )
              .join('\n') || 'no diverts',
        );
        return 0;
      }
      default:
        throw new ZerolossError(
          'ZL_INVALID_CONFIG',
          `unknown backlog action ${JSON.stringify(action)}: use partitions, forward, forwards, divert, undivert, diverts, degrade or switches`,
        );
    }
  });
}

function formatSwitches(all: Array<{ name: string; on: boolean; since: Date; by: string; reason: string | null }>): string {
  return (
    all
      .map((x) => `${x.name} ${x.on ? 'ON ' : 'off'}  since ${x.since.toISOString()} by ${x.by}${x.reason ? `: ${x.reason}` : ''}`)
      .join('\n') || 'no switches'
  );
}
