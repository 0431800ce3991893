import { ZerolossError } from '../../core/errors.ts';
import { approveHeldRun } from '../../operations/approve-held-run.ts';
import { reconcile, type ReconcileReport } from '../../operations/reconcile.ts';
import { actorOf } from '../../operations/intervention.ts';
import { parseDuration, parseWindow, sliceWindow } from '../../operations/time-window.ts';
import { connectionOptions, intOption, parse, print } from '../args.ts';
import { escalationCommand } from '../escalation-command.ts';
import { brokerHelp, brokerOptions, withOps } from '../ops-context.ts';
import { sourceReconcileStore } from '../../operations/source-reconcile-store.ts';

export const reconcileHelp = `Usage: zeroloss reconcile --since <time> [--until <time>] --pg <url> (--kafka <brokers> | --table-log |
       --redis-streams <url> | --rabbitmq <url>) [options]
       zeroloss reconcile --held --pg <url>
       zeroloss reconcile --approve <run> --reason <text> --pg <url> (--kafka <brokers> | --table-log | …)

Compares, by message id, what the outbox committed in the window, what the broker holds (read back
partition by partition, from the offsets the window's timestamps map to) and what each consumer group's
inbox applied. On RabbitMQ the partition streams are read without consuming; a transport with no
inspector is not read: the report says so, calls nothing missing on the broker, and compares outbox with
inboxes.
Reports counts per stage, ids missing at each stage, ids duplicated on the topic (expected now and then:
delivery is at-least-once), stuck and parked rows, a state-column source's rows with no message to check
yet (never claimed, or unbuildable: "unbuilt"), dead letters, and a verdict:

  clean       every committed message is on the broker and applied by every group
  in-flight   nothing lost; some messages are still on their way (unsent, or not consumed yet)
  attention   nothing lost; a person is needed (parked or stuck rows, dead letters, incomplete scan)
  gaps        messages are missing at some stage
  repaired    gaps were found and every missing message was re-published (run again to confirm)

Rows still pending whose message the broker already holds (the relay died between the ack and recording it)
are marked sent, without a resend, unless --dry-run or --no-mark-acked (P5).

  --since <time>            window start: ISO-8601, epoch ms, or a duration ago (15m, 2h, 1d)
  --until <time>            window end (default: now)
  --topic <topic>           only these topics (repeatable; default every topic in the window)
  --group <group>           consumer groups to check (repeatable; default the groups whose inbox or dead
                            letters hold a message of the window)
  --repair                  re-publish missing messages from the outbox; consumers apply them once
  --max-auto-repair <n>     the escalation threshold (default 1000). A run that finds more missing
                            messages escalates, with or without --repair: nothing is re-published and
                            the run is held, with every missing id, for a person (see --held, --approve)
  --yes                     re-publish above --max-auto-repair at once (no hold)
  --on-escalate <command>   the emergency plan, as with serve: a shell command run once per held run, with
                            the held report as JSON on stdin and ZEROLOSS_RUN_ID set; its failure (non-zero
                            exit, or still running after --on-escalate-timeout, default 30s) is printed on
                            stderr and the run stays held
  --dry-run                 write nothing (no marking, no repair, no run record)
  --no-mark-acked           do not mark acked-but-pending rows sent
  --slack <duration>        extra broker time read around the window, for clock skew (default 60s)
  --stuck-after <duration>  unsent rows older than this are stuck (default 5m)
  --list-limit <n>          ids listed per category (default 1000; counts are complete)
  --slice <duration>        reconcile a long window one slice at a time (memory holds one slice's ids);
                            prints one report per slice (a JSON array with --json)
  --config-file <f.json>    its "sources" (state-column tables) are reconciled too, each on its own rows
                            after the outbox: one report each (a JSON array, each with "source"); the
                            ack-vs-state repair marks their rows sent, --repair re-publishes from them
  --actor <name>            recorded on repairs and approvals (default: the OS user)

Held runs (escalation, O8):
  --held                    list the runs held for approval (id, window, how many ids); needs only --pg
  --approve <run>           re-publish exactly the ids run <run> holds, once, through the audited resend
                            path (as zeroloss resend: rows of the outbox and of --config-file's sources);
                            a second approval is refused (ZL_RUN_NOT_HELD). If the broker takes none of
                            them the run is held again. Needs --reason
  --reason <text>           why (recorded in the run, the audit and each message's resend)
${brokerHelp}
  --pg <url>, --schema <name>, --kafka <brokers>, --json

Exit status: 0 clean or in-flight, 1 gaps or attention (a held run included), 3 repaired, 2 bad usage.
--held: 0. --approve: 0 all re-published, 1 some failed or were not found, or the run is not held.

Kafka with TLS or SASL: --kafka-tls, --kafka-ca <file>, --kafka-sasl <mechanism>, --kafka-username,
--kafka-password-file <file>, --config-file <file.json> … (all of them: zeroloss help kafka)`;

export async function reconcileCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...connectionOptions,
    ...brokerOptions,
    since: { type: 'string' },
    until: { type: 'string' },
    topic: { type: 'string', multiple: true },
    group: { type: 'string', multiple: true },
    repair: { type: 'boolean' },
    'max-auto-repair': { type: 'string' },
    yes: { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    'no-mark-acked': { type: 'boolean' },
    slack: { type: 'string' },
    'stuck-after': { type: 'string' },
    'list-limit': { type: 'string' },
    actor: { type: 'string' },
    slice: { type: 'string' },
    held: { type: 'boolean' },
    approve: { type: 'string' },
    reason: { type: 'string' },
    'on-escalate': { type: 'string' },
    'on-escalate-timeout': { type: 'string' },
  });
  if (values.help) {
    console.log(reconcileHelp);
    return 0;
  }
  if (values.held) return heldCommand(values);
  if (values.approve !== undefined) return approveCommand(values, values.approve);
  if (values.reason !== undefined) throw new ZerolossError('ZL_INVALID_CONFIG', '--reason goes with --approve <run>');
  const hookTimeoutMs = parseDuration(values['on-escalate-timeout'] ?? '30s');
  const window = parseWindow(values.since, values.until);
  const slices = values.slice ? sliceWindow(window, parseDuration(values.slice)) : [window];
  let withSources = false;
  const reports = await withOps(values, 'required', async (ops) => {
    const sources = await ops.sources();
    withSources = sources.length > 0;
    // The outbox, then each state-column source of --config-file on its own rows (the consuming side is shared).
    const stores = [
      { name: undefined, store: ops.store },
      ...sources.map((source) => ({ name: source.name, store: sourceReconcileStore(ops.store, source) })),
    ];
    const out: Array<ReconcileReport & { source?: string }> = [];
    for (const slice of slices) {
      for (const target of stores) {
        const report = await reconcile(
          {
            store: target.store,
            broker: ops.broker,
            brokerNotRead: ops.brokerNotRead,
            publisher: values.repair ? ops.publisher() : undefined,
          },
          slice,
          {
            topics: values.topic,
            groups: values.group,
            repair: values.repair ?? false,
            maxAutoRepair: intOption(values['max-auto-repair'], 'max-auto-repair', 1000),
            confirmed: values.yes ?? false,
            dryRun: values['dry-run'] ?? false,
            markAcked: !values['no-mark-acked'],
            brokerSlackMs: values.slack ? parseDuration(values.slack) : 60_000,
            stuckAfterMs: values['stuck-after'] ? parseDuration(values['stuck-after']) : 300_000,
            listLimit: intOption(values['list-limit'], 'list-limit', 1000) || 1000,
            actor: `reconcile:${actorOf({ actor: values.actor })}`,
          },
        );
        out.push(target.name === undefined ? report : { ...report, source: target.name });
      }
    }
    return out;
  });
  print(values.json, values.slice || withSources ? reports : reports[0], () =>
    reports.map((r) => `${r.source ? `source ${r.source}:\n` : ''}${formatReport(r)}`).join('\n'),
  );
  // The hook runs after the reports are out, once per held run (the run is stored held before that, so a
  // person can act on it even if the hook fails); as with serve, its failure leaves the run held.
  const onEscalate = values['on-escalate'];
  if (onEscalate !== undefined) {
    for (const r of reports.filter((x) => x.held && x.runId)) {
      await escalationCommand(
        onEscalate,
        hookTimeoutMs,
      )(r).catch((e: Error) => console.error(`zeroloss reconcile: escalation hook failed for run ${r.runId}: ${e.message}`));
    }
  }
  const codes = reports.map((r) => ({ clean: 0, 'in-flight': 0, repaired: 3, attention: 1, gaps: 1 })[r.verdict]);
  return codes.includes(1) ? 1 : codes.includes(3) ? 3 : 0;
}

export function formatReport(r: ReconcileReport): string {
  const c = r.counts;
  const lines = [
    `reconcile ${r.window.from} .. ${r.window.to}  topics: ${r.topics.join(', ') || '-'}  verdict: ${r.verdict.toUpperCase()}${r.runId ? `  (run ${r.runId})` : ''}`,
    `  outbox    committed ${c.committed}  sent ${c.sent}  pending ${c.pending}  failed ${c.failed}  parked ${c.parked}  stuck ${c.stuck}`,
    !r.brokerStage.read
      ? `  broker    ${r.brokerStage.note}`
      : `  broker    on broker ${c.onBroker} (${c.brokerCopies} copies)  missing ${c.missingOnBroker}  duplicated ${c.duplicatedOnBroker}  acked-not-marked ${c.ackedNotMarked}${c.unverified ? `  unverified ${c.unverified}` : ''}`,
    ...r.groups.map(
      (g) =>
        `  group ${g.groupId}  expected ${g.expected}  applied ${g.applied}  in flight ${g.inFlight}  dead-lettered ${g.deadLettered}  discarded ${g.discarded}  missing ${g.missing}`,
    ),
  ];
  const list = (title: string, ids: string[]) => {
    if (ids.length > 0) lines.push(`  ${title} (${ids.length}): ${ids.join(' ')}`);
  };
  list('missing on the broker', r.missing.broker);
  for (const [group, ids] of Object.entries(r.missing.groups)) list(`missing in group ${group}`, ids);
  if (r.duplicates.length > 0) lines.push(`  duplicated on the topic: ${r.duplicates.map((d) => `${d.messageId}x${d.copies}`).join(' ')}`);
  if (r.ackedNotMarked.ids.length > 0) {
    list(r.ackedNotMarked.marked ? 'acked but still pending: marked sent' : 'acked but still pending (not marked)', r.ackedNotMarked.ids);
  }
  for (const p of r.parked) lines.push(`  parked ${p.messageId} (${p.topic}, ${p.attempts} attempts): ${p.lastError ?? '-'}`);
  for (const s of r.stuck)
    lines.push(`  stuck ${s.messageId} (${s.topic}, state ${s.state}, ${Math.round(s.ageMs / 1000)} s old): ${s.lastError ?? '-'}`);
  if (r.unbuilt.count > 0) lines.push(`  no message yet (source rows): ${r.unbuilt.count}, ${r.unbuilt.stuck} need a person`);
  for (const u of r.unbuilt.rows)
    lines.push(
      `  ${u.kind} ${u.id} (state ${u.state}, ${Math.round(u.ageMs / 1000)} s old${u.stuck ? ', STUCK' : ''})${u.error ? `: ${u.error}` : ''}`,
    );
  for (const d of r.deadLettered) lines.push(`  dead-lettered in ${d.group}: ${d.messageId}`);
  for (const i of r.scan.incomplete)
    lines.push(`  scan incomplete: ${i.topic}/${i.partition} reached ${i.reached} of ${i.to}: ${i.reason}`);
  if (r.repair) {
    lines.push(
      r.repair.skipped
        ? `  repair: not done: ${r.repair.skipped}`
        : `  repair: re-published ${r.repair.resent.length} of ${r.repair.selected}${r.repair.failed.length ? `, FAILED ${r.repair.failed.length}: ${r.repair.failed.map((f) => `${f.messageId} (${f.error})`).join(', ')}` : ''}`,
    );
  }
  if (r.held) {
    lines.push(
      `  ESCALATED: ${r.held.count} missing messages exceed the automatic repair limit of ${r.held.limit}; run ${r.runId} is held: zeroloss reconcile --approve ${r.runId} --reason …`,
    );
  }
  if (r.awaitingApproval > 0) {
    lines.push(`  ${r.awaitingApproval} missing messages are held by an earlier run, awaiting approval (zeroloss reconcile --held)`);
  }
  if (r.truncated) lines.push(`  (id lists cut at the list limit; counts are complete)`);
  return lines.join('\n');
}

type Values = Parameters<typeof withOps>[0] & { json?: boolean; reason?: string; actor?: string };

async function heldCommand(values: Values): Promise<number> {
  const runs = await withOps(values, 'none', (ops) => ops.store.heldRuns(1_000));
  print(values.json, runs, () =>
    runs.length === 0
      ? 'no reconcile run is held'
      : [
          'held reconcile runs (approve one with: zeroloss reconcile --approve <run> --reason …)',
          ...runs.map(
            (r) =>
              `  run ${r.id}  ${r.kind}  ${r.windowFrom.toISOString()} .. ${r.windowTo.toISOString()}  held ${r.held} ids  (finished ${r.finishedAt.toISOString()})`,
          ),
        ].join('\n'),
  );
  return 0;
}

async function approveCommand(values: Values, runId: string): Promise<number> {
  if (!values.reason?.trim()) throw new ZerolossError('ZL_INVALID_CONFIG', '--approve needs --reason <text>');
  const reason = values.reason;
  const result = await withOps(values, 'required', async (ops) =>
    approveHeldRun({ store: ops.store, stores: [ops.store, ...(await ops.sources())], publisher: ops.publisher() }, runId, {
      actor: `reconcile:${actorOf({ actor: values.actor })}`,
      reason,
    }),
  );
  const r = result.resend;
  print(values.json, result, () =>
    [
      `approved run ${result.runId}: re-published ${r.resent.length} of ${result.held} held`,
      ...r.skipped.map((s) => `  skipped ${s.messageId}: ${s.reason}`),
      ...r.failed.map((f) => `  FAILED ${f.messageId}: ${f.error}`),
      ...r.notFound.map((id) => `  not found: ${id}`),
    ].join('\n'),
  );
  return r.failed.length + r.notFound.length > 0 ? 1 : 0;
}
