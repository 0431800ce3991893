import { readFileSync } from 'node:fs';
import { ZerolossError } from '../../core/errors.ts';
import { actorOf } from '../../operations/intervention.ts';
import { resendEverywhere } from '../../operations/resend.ts';
import { parseWindow } from '../../operations/time-window.ts';
import type { ResendSelector } from '../../ports/operations-store.ts';
import { connectionOptions, intOption, parse, print } from '../args.ts';
import { brokerHelp, brokerOptions, withOps } from '../ops-context.ts';

export const resendHelp = `Usage: zeroloss resend (--since <time> [--until <time>] | --ids <id,...> | --ids-file <file>) --pg <url>
       (--kafka <brokers> | --table-log | --redis-streams <url> | --rabbitmq <url>) [options]

Re-publishes sent messages from the outbox (and from the state-column sources declared in --config-file:
rows whose state column says sent, by the creation-time column's window), byte for byte and in commit order, when the broker lost them
(retention, a full disk, deleted records). Safe to repeat: each consumer group's inbox applies a message
once, so a copy of something already applied is skipped. Each resend is recorded on the row (a sent→sent
transition with the new position) and in the audit with who and why. Rows not sent yet are left to the
relay, which is what sends them.

  --since <time>        committed from (ISO-8601, epoch ms, or a duration ago like 2h)
  --until <time>        committed before (default: now)
  --topic <topic>       only these topics (repeatable)
  --ids <id,...>        these messages (comma-separated; repeatable)
  --ids-file <file>     message ids, one per line
  --reason <text>       why (recorded in the audit; default "resend")
  --actor <name>        who (default: the OS user)
  --batch-size <n>      messages per publish (default 500)
  --dry-run             only count what would be resent
${brokerHelp}
  --pg <url>, --schema <name>, --kafka <brokers>, --json

Exit status: 0 all resent, 1 some failed, were not found or are parked (release them first), 2 bad usage.

Kafka with TLS or SASL: --kafka-tls, --kafka-ca <file>, --kafka-sasl <mechanism>, --kafka-username,
--kafka-password-file <file>, --config-file <file.json> … (all of them: zeroloss help kafka)`;

export async function resendCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...connectionOptions,
    ...brokerOptions,
    since: { type: 'string' },
    until: { type: 'string' },
    topic: { type: 'string', multiple: true },
    ids: { type: 'string', multiple: true },
    'ids-file': { type: 'string' },
    reason: { type: 'string' },
    actor: { type: 'string' },
    'batch-size': { type: 'string' },
    'dry-run': { type: 'boolean' },
  });
  if (values.help) {
    console.log(resendHelp);
    return 0;
  }
  const ids = [
    ...(values.ids ?? []).flatMap((s) => s.split(',')),
    ...(values['ids-file'] ? readFileSync(values['ids-file'], 'utf8').split('\n') : []),
  ]
    .map((s) => s.trim())
    .filter(Boolean);
  if (ids.length > 0 && values.since) throw new ZerolossError('ZL_INVALID_CONFIG', 'give either --since/--until or --ids, not both');
  if (ids.length === 0 && !values.since) throw new ZerolossError('ZL_INVALID_CONFIG', 'resend needs --since/--until or --ids');
  const selector: ResendSelector =
    ids.length > 0 ? { ids, topics: values.topic } : { window: parseWindow(values.since, values.until), topics: values.topic };
  const result = await withOps(values, 'required', async (ops) =>
    resendEverywhere({ stores: [ops.store, ...(await ops.sources())], publisher: ops.publisher() }, selector, {
      actor: `resend:${actorOf({ actor: values.actor })}`,
      reason: values.reason ?? 'resend',
      batchSize: intOption(values['batch-size'], 'batch-size', 500) || 500,
      dryRun: values['dry-run'] ?? false,
    }),
  );
  print(values.json, result, () =>
    [
      `resend: ${values['dry-run'] ? 'would re-publish' : 're-published'} ${result.resent.length} of ${result.selected} selected`,
      ...result.skipped.map((s) => `  skipped ${s.messageId}: ${s.reason}`),
      ...result.failed.map((f) => `  FAILED ${f.messageId}: ${f.error}`),
      ...result.notFound.map((id) => `  not found: ${id}`),
    ].join('\n'),
  );
  // A parked row asked for is not on the broker and will not be until someone acts: not a success.
  const parked = result.skipped.filter((x) => x.reason.startsWith('parked')).length;
  return result.failed.length + result.notFound.length + parked > 0 ? 1 : 0;
}
