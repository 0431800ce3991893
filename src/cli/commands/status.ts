import { PostgresReceiptStore } from '../../adapters/postgres/postgres-receipt-store.ts';
import { PostgresBacklogStore } from '../../adapters/postgres/postgres-backlog-store.ts';
import { mib, type Status, status } from '../../operations/status.ts';
import { parseDuration } from '../../operations/time-window.ts';
import { connectionOptions, parse, print } from '../args.ts';
import { brokerHelp, brokerOptions, withOps } from '../ops-context.ts';
import { databaseWalSlots } from '../wal-slots.ts';

export const statusHelp = `Usage: zeroloss status --pg <url> [--kafka <brokers> | --table-log | --redis-streams <url> |
       --rabbitmq <url>] [options]

How far behind are we: outbox rows by state (pending, failed, parked, stuck), the oldest unsent age and the
parked rows, and the same for each state-column source declared in --config-file (docs/operations.md); per consumer group and partition the committed offset (Kafka's, or the one stored with the
effects), the end offset, the lag and the effects applied per second; open dead letters; the open sequence
gaps of consumers with the control option (docs/consumer.md, "Loss detection that heals (C9)"), and the
sequence alarms recorded; the last reconciliation runs, and the runs held for a person to approve (more
missing messages than the automatic repair limit: 'zeroloss reconcile --held|--approve'); what is degraded now (switches on, divert
rules in force: 'zeroloss backlog switches|diverts'); two-way confirmation: per consumer group
expected to apply this producer's messages, how many of those sent recently it confirmed by receipt and the
oldest it did not (docs/operations.md, "Two-way confirmation"); the WAL relay's replication slots on this
database: whether a relay reads each, the WAL it holds back and its lag (docs/wal-relay.md). Topics whose
unsent rows wait because the broker lacks the topic (checked when a broker is named) or refuses the relay
access are listed with the command that creates them.

  --group <group>             groups to report (repeatable; default the groups this schema knows: any
                              inbox rows, stored offsets, open dead letters)
  --stuck-after <duration>    unsent rows older than this count as stuck (default 5m)
  --throughput-window <dur>   applied/s is measured over this window (default 60s)
  --expect-groups <a,b>       consumer groups expected to confirm every message of the topics they read
                              (default: the groups that sent a receipt in the last 7 days)
  --confirm-window <dur>      confirmations are counted over messages committed this recently (default 15m)
  --unconfirmed-after <dur>   a message sent less than this ago is not counted yet (default 60s)
${brokerHelp}
  --config-file <f.json>      its "sources": state-column tables reported beside the outbox
  --pg <url>, --schema <name>, --kafka <brokers> (for offsets and lag), --json

Exit status: 0, or 1 when rows (of the outbox or a source) are parked or stuck, or wait for a missing or
refused topic, or a group named with --expect-groups left a message of the window unconfirmed, or a
consumer group has a sequence gap open past its alarm threshold, or a reconciliation run is held, or a
replication slot lost the WAL it needs.

Kafka with TLS or SASL: --kafka-tls, --kafka-ca <file>, --kafka-sasl <mechanism>, --kafka-username,
--kafka-password-file <file>, --config-file <file.json> … (all of them: zeroloss help kafka)`;

export async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...connectionOptions,
    ...brokerOptions,
    group: { type: 'string', multiple: true },
    'stuck-after': { type: 'string' },
    'throughput-window': { type: 'string' },
    'expect-groups': { type: 'string', multiple: true },
    'confirm-window': { type: 'string' },
    'unconfirmed-after': { type: 'string' },
  });
  if (values.help) {
    console.log(statusHelp);
    return 0;
  }
  let notRead: string | undefined;
  const result = await withOps(values, 'optional', async (ops) => {
    notRead = ops.brokerNotRead;
    const receipts = new PostgresReceiptStore(ops.db, { schema: ops.schema });
    const expect = values['expect-groups']?.flatMap((g) => g.split(',')).filter((g) => g !== '');
    const switches = new PostgresBacklogStore(ops.db, { schema: ops.schema });
    const degrade = { switches: () => switches.switches(), divertRules: () => ops.store.divertRules() };
    const walSlots = databaseWalSlots(ops.db);
    return status(
      { store: ops.store, degrade, broker: ops.broker, sources: await ops.sources(), receipts, gaps: ops.sequences, walSlots },
      {
        groups: values.group,
        stuckAfterMs: values['stuck-after'] ? parseDuration(values['stuck-after']) : undefined,
        throughputWindowMs: values['throughput-window'] ? parseDuration(values['throughput-window']) : undefined,
        confirmations: {
          groups: expect,
          windowMs: values['confirm-window'] ? parseDuration(values['confirm-window']) : undefined,
          unconfirmedAfterMs: values['unconfirmed-after'] ? parseDuration(values['unconfirmed-after']) : undefined,
        },
      },
    );
  });
  print(values.json, notRead ? { ...result, brokerNotRead: notRead } : result, () => formatStatus(result, notRead));
  const sourcesBehind = result.sources.filter((x) => x.parked > 0 || x.stuck).length;
  // Only groups named with --expect-groups count: a group merely seen in receipts may have been retired.
  const unconfirmed = values['expect-groups'] ? result.confirmations.filter((c) => c.unconfirmed > 0).length : 0;
  const alarmedGaps = result.sequenceGaps.filter((g) => g.alarmed > 0).length;
  const needsPerson = result.heldRuns.length + result.walSlots.filter((x) => x.walStatus === 'lost').length;
  return result.outbox.parked +
    result.outbox.stuck +
    result.unavailableTopics.length +
    sourcesBehind +
    unconfirmed +
    alarmedGaps +
    needsPerson >
    0
    ? 1
    : 0;
}

function formatStatus(s: Status, brokerNotRead: string | undefined): string {
  const o = s.outbox;
  const lines = [
    `status at ${s.at}`,
    ...(brokerNotRead ? [`  ${brokerNotRead}`] : []),
    `  outbox${o.insertOnly ? ' (insert-only)' : ''}  pending ${o.pending}  failed ${o.failed}  parked ${o.parked}  stuck ${o.stuck}  oldest unsent ${Math.round(o.oldestUnsentAgeMs / 1000)} s`,
  ];
  for (const src of s.sources) {
    lines.push(
      `  source ${src.name}  pending ${src.pending}  failed ${src.failed}  parked ${src.parked}  stuck ${src.stuckRows}  oldest unsent ${Math.round(src.oldestUnsentAgeMs / 1000)} s`,
    );
    for (const p of src.parkedRows)
      lines.push(
        `    parked ${p.messageId ?? `${p.source}:${p.rowId}`} row ${p.rowId} ${p.type ?? '-'} (${p.attempts} attempts): ${p.lastError ?? '-'}`,
      );
  }
  for (const t of s.unavailableTopics) lines.push(`    waiting for topic ${t.topic} (${t.reason}): ${t.waiting} rows`);
  for (const p of s.parked)
    lines.push(`    parked ${p.messageId} ${p.topic} ${p.type} (${p.attempts} attempts, since ${p.parkedSince}): ${p.lastError ?? '-'}`);
  for (const g of s.groups) {
    lines.push(`  group ${g.group}  lag ${g.lag}  applied ${g.appliedPerSecond}/s  open dead letters ${g.openDeadLetters}`);
    for (const p of g.partitions) {
      lines.push(
        `    ${p.topic}/${p.partition}  committed ${p.committed ?? '-'}  end ${p.end}  lag ${p.lag ?? '-'}  applied ${p.appliedPerSecond}/s`,
      );
    }
  }
  for (const c of s.confirmations) {
    const oldest = c.oldestUnconfirmed;
    lines.push(
      `  confirmations ${c.group}  ${c.confirmed} of ${c.sent} confirmed${c.topics ? ` (${c.topics.join(', ')})` : ''}` +
        `${oldest ? `  oldest unconfirmed ${oldest.messageId} ${oldest.topic} sent ${Math.round(oldest.ageMs / 1000)} s ago` : ''}` +
        `  last receipt ${c.lastReceiptAt ?? 'never'}`,
    );
  }
  for (const x of s.degraded.switches)
    lines.push(`  degraded ${x.name}  since ${x.since.toISOString()} by ${x.by}${x.reason ? `: ${x.reason}` : ''}`);
  for (const d of s.degraded.diverts)
    lines.push(`  diverted ${d.topic} [${d.type}] → ${d.target}  by ${d.createdBy}${d.reason ? `: ${d.reason}` : ''}`);
  for (const g of s.sequenceGaps)
    lines.push(
      `  sequence gaps ${g.groupId}  open ${g.open} (alarmed ${g.alarmed}, at the tail ${g.tail})  missing ${g.missing}` +
        `  oldest ${g.oldest?.toISOString() ?? '-'}  resend requests ${g.repairRequests}`,
    );
  if (s.alarms.length > 0) {
    lines.push(`  sequence alarms (${s.alarms.length})`);
    for (const a of s.alarms.slice(0, 20)) {
      lines.push(
        `    ${a.at.toISOString()} ${a.groupId} ${a.kind} ${a.topic}/${a.partition} producer ${a.producerId} key ${a.key}: expected ${a.expected}, got ${a.received}`,
      );
    }
  }
  for (const r of s.lastReconcile)
    lines.push(
      `  reconcile ${r.kind} ${r.windowFrom.toISOString()}..${r.windowTo.toISOString()}: ${r.verdict} (${r.finishedAt.toISOString()})`,
    );
  for (const r of s.heldRuns)
    lines.push(
      `  reconcile run ${r.id} HELD: ${r.held} missing messages not re-published (${r.kind} ${r.windowFrom.toISOString()}..${r.windowTo.toISOString()}); approve: zeroloss reconcile --approve ${r.id} --reason …`,
    );
  for (const x of s.walSlots)
    lines.push(
      `  wal slot ${x.slot}  ${x.active ? `read${x.holder ? ` by ${x.holder}` : ''}` : 'NOT READ'}  retained ${mib(x.retainedBytes)}  lag ${mib(x.lagBytes)}  wal ${x.walStatus}`,
    );
  for (const w of s.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}
