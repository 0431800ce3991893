import { type Status, status } from '../../operations/status.ts';
import { parseDuration } from '../../operations/time-window.ts';
import { connectionOptions, parse, print } from '../args.ts';
import { brokerHelp, brokerOptions, withOps } from '../ops-context.ts';

export const statusHelp = `Usage: zeroloss status --pg <url> [--kafka <brokers> | --table-log | --redis-streams <url> |
       --rabbitmq <url>] [options]

How far behind are we: outbox rows by state (pending, failed, parked, stuck), the oldest unsent age and the
parked rows, and the same for each state-column source declared in --config-file (docs/operations.md); per consumer group and partition the committed offset (Kafka's, or the one stored with the
effects), the end offset, the lag and the effects applied per second; open dead letters; sequence gaps and
duplicates the consumers recorded; the last reconciliation runs. Topics whose unsent rows wait because the
broker lacks the topic (checked when a broker is named) or refuses the relay access are listed with the
command that creates them.

  --group <group>             groups to report (repeatable; default the groups this schema knows: any
                              inbox rows, stored offsets, open dead letters)
  --stuck-after <duration>    unsent rows older than this count as stuck (default 5m)
  --throughput-window <dur>   applied/s is measured over this window (default 60s)
${brokerHelp}
  --config-file <f.json>      its "sources": state-column tables reported beside the outbox
  --pg <url>, --schema <name>, --kafka <brokers> (for offsets and lag), --json

Exit status: 0, or 1 when rows (of the outbox or a source) are parked or stuck, or wait for a missing or
refused topic.

Kafka with TLS or SASL: --kafka-tls, --kafka-ca <file>, --kafka-sasl <mechanism>, --kafka-username,
--kafka-password-file <file>, --config-file <file.json> … (all of them: zeroloss help kafka)`;

export async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...connectionOptions,
    ...brokerOptions,
    group: { type: 'string', multiple: true },
    'stuck-after': { type: 'string' },
    'throughput-window': { type: 'string' },
  });
  if (values.help) {
    console.log(statusHelp);
    return 0;
  }
  let notRead: string | undefined;
  const result = await withOps(values, 'optional', async (ops) => {
    notRead = ops.brokerNotRead;
    return status(
      { store: ops.store, broker: ops.broker, sources: await ops.sources() },
      {
        groups: values.group,
        stuckAfterMs: values['stuck-after'] ? parseDuration(values['stuck-after']) : undefined,
        throughputWindowMs: values['throughput-window'] ? parseDuration(values['throughput-window']) : undefined,
      },
    );
  });
  print(values.json, notRead ? { ...result, brokerNotRead: notRead } : result, () => formatStatus(result, notRead));
  const sourcesBehind = result.sources.filter((x) => x.parked > 0 || x.stuck).length;
  return result.outbox.parked + result.outbox.stuck + result.unavailableTopics.length + sourcesBehind > 0 ? 1 : 0;
}

function formatStatus(s: Status, brokerNotRead: string | undefined): string {
  const o = s.outbox;
  const lines = [
    `status at ${s.at}`,
    ...(brokerNotRead ? [`  ${brokerNotRead}`] : []),
    `  outbox  pending ${o.pending}  failed ${o.failed}  parked ${o.parked}  stuck ${o.stuck}  oldest unsent ${Math.round(o.oldestUnsentAgeMs / 1000)} s`,
  ];
  for (const src of s.sources) {
    lines.push(
      `  source ${src.name}  pending ${src.pending}  failed ${src.failed}  parked ${src.parked}${src.stuck ? '  STUCK' : ''}  oldest unsent ${Math.round(src.oldestUnsentAgeMs / 1000)} s`,
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
  for (const w of s.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}
