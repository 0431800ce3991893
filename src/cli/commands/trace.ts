import { PostgresReceiptStore } from '../../adapters/postgres/postgres-receipt-store.ts';
import { ZerolossError } from '../../core/errors.ts';
import { type MessageTrace, trace } from '../../operations/trace.ts';
import { parseDuration } from '../../operations/time-window.ts';
import { connectionOptions, parse, print } from '../args.ts';
import { brokerHelp, brokerOptions, withOps } from '../ops-context.ts';

export const traceHelp = `Usage: zeroloss trace <message-id> --pg <url> [--kafka <brokers> | --table-log | --redis-streams <url> |
       --rabbitmq <url>] [options]

Shows a message's whole life: its outbox row (or its row in a state-column source declared in --config-file)
and every state change (with attempts, errors and who made
them), audit entries (releases, resends, discards), the position the relay recorded read back from the broker,
every copy on the topic and its retry and dead-letter topics, each consumer group's inbox record (when,
from which offset) and dead letters with their error, the receipts the consumer groups sent back (two-way
confirmation: per group "applied" with its time, or "not confirmed" for a group expected on the topic) — and
where the trail stops.

  --group <group>        also report this group (repeatable): one that never saw the message has no
                         inbox row to find it by, and shows its committed offset instead; it is also
                         expected to confirm the message
  --no-broker            skip the broker (database only)
  --slack <duration>     broker time scanned around the known times (default 60s)
  --max-scan <duration>  retry and dead-letter topics are scanned this long after creation (default 15m)
${brokerHelp}
  --pg <url>, --schema <name>, --kafka <brokers> (optional), --json

Exit status: 0 the message was applied by every group found, 1 the trail stops earlier, 2 bad usage.

Kafka with TLS or SASL: --kafka-tls, --kafka-ca <file>, --kafka-sasl <mechanism>, --kafka-username,
--kafka-password-file <file>, --config-file <file.json> … (all of them: zeroloss help kafka)`;

export async function traceCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...connectionOptions,
    ...brokerOptions,
    group: { type: 'string', multiple: true },
    'no-broker': { type: 'boolean' },
    slack: { type: 'string' },
    'max-scan': { type: 'string' },
  });
  if (values.help) {
    console.log(traceHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new ZerolossError('ZL_INVALID_CONFIG', 'trace takes one message id');
  const id = positionals[0] as string;
  let notRead: string | undefined;
  const result = await withOps(values, values['no-broker'] ? 'none' : 'optional', async (ops) => {
    notRead = ops.brokerNotRead;
    const receipts = new PostgresReceiptStore(ops.db, { schema: ops.schema });
    return trace({ store: ops.store, broker: ops.broker, sources: await ops.sources(), receipts }, id, {
      groups: values.group,
      slackMs: values.slack ? parseDuration(values.slack) : undefined,
      maxScanMs: values['max-scan'] ? parseDuration(values['max-scan']) : undefined,
    });
  });
  print(values.json, notRead ? { ...result, brokerNotRead: notRead } : result, () => formatTrace(result, notRead));
  return result.stop.stage === 'complete' ? 0 : 1;
}

export function formatTrace(t: MessageTrace, brokerNotRead?: string): string {
  const lines = [`message ${t.messageId}`];
  const o = t.outbox;
  if (o && t.source) lines.push(`  source     ${t.source}, row ${o.seqId} (a business table with its own send state)`);
  if (o) {
    lines.push(
      `  outbox     ${o.stateName} after ${o.attempts} attempt(s); topic ${o.topic}, key ${o.key}, type ${o.type}, producer ${o.producerId} seq ${o.keySeq}`,
      `             committed ${o.createdAt.toISOString()}${o.sentAt ? `, sent ${o.sentAt.toISOString()} to partition ${o.sentPartition} offset ${o.sentOffset}` : ''}${o.lastError ? `; last error: ${o.lastError}` : ''}`,
    );
  } else {
    lines.push('  outbox     no row (never committed here, discarded, or removed by retention)');
  }
  if (t.broker) {
    const r = t.broker.recorded;
    lines.push(
      `  broker     ${r ? `recorded ${r.topic}/${r.partition}/${r.offset}: ${r.check}` : 'no recorded position'}; ${t.broker.copies.length} copies found`,
    );
    for (const c of t.broker.copies)
      lines.push(`             ${c.kind.padEnd(5)} ${c.topic} partition ${c.partition} offset ${c.offset} at ${c.timestamp}`);
    for (const i of t.broker.incomplete) lines.push(`             scan incomplete: ${i.topic}/${i.partition}: ${i.reason}`);
  } else {
    lines.push(`  broker     ${brokerNotRead ?? 'not checked'}`);
  }
  for (const g of t.groups) {
    const detail = g.applied
      ? `applied ${g.applied.processedAt.toISOString()} from ${g.applied.topic}/${g.applied.partition}/${g.applied.offset} (key ${g.applied.idempotencyKey})`
      : g.committed
        ? `committed offset ${g.committed}`
        : '';
    lines.push(`  group      ${g.group}: ${g.status}${detail ? ` — ${detail}` : ''}`);
    for (const d of g.deadLetters) {
      lines.push(
        `             dead letter ${d.id} (${d.status}${d.resolvedBy ? ` by ${d.resolvedBy}` : ''}): ${d.errorCode}: ${d.error}, ${d.attempts} attempt(s)`,
      );
    }
  }
  const c = t.confirmations;
  if (c && (c.applied.length > 0 || c.notConfirmed.length > 0)) {
    for (const a of c.applied) lines.push(`  confirmed  ${a.group}: applied ${a.appliedAt} (receipt stored ${a.receivedAt})`);
    for (const g of c.notConfirmed) lines.push(`  confirmed  ${g}: not confirmed`);
  } else if (c) {
    lines.push('  confirmed  no receipts (no consumer group reports back for this topic)');
  }
  lines.push('  life');
  for (const s of t.steps) lines.push(`    ${s.at}  ${s.stage.padEnd(8)} ${s.text}`);
  lines.push(`  trail ends at ${t.stop.stage}: ${t.stop.reason}`);
  return lines.join('\n');
}
