import { userInfo } from 'node:os';
import { kafka } from '../../adapters/kafka/kafka-transport.ts';
import { postgres } from '../../adapters/postgres/postgres.ts';
import { ZerolossError } from '../../core/errors.ts';
import { deadLetterIds, replayDeadLetters } from '../../consumer/dead-letters.ts';
import type { Store } from '../../ports/backends.ts';
import type { DeadLetterDetail, DeadLetterFilter, DeadLetterStatus, DeadLetterSummary } from '../../ports/dead-letter-store.ts';
import { connectionOptions, intOption, parse, pgUrl, print } from '../args.ts';
import { kafkaSettings } from '../kafka-connection-options.ts';

export const dlqHelp = `Usage: zeroloss dlq <list|show|replay|discard> [options]

Dead letters: messages a consumer gave up on (bad input, unknown type or version, a permanent handler
error, retries exhausted, poison, another message under an applied message id). Each is a row in the
zeroloss schema's dead_letter table (this tool's view) and, unless that topic refused it for good (too
large), a copy of the original bytes on <topic>.dlq with the failure headers. Replays read the table.

  list                     newest first
      --status <s>         dead (default) | replayed | discarded | all
      --topic <topic>      original topic
      --group <group>      consumer group
      --limit <n>          rows to show (default 50)
      --before <id>        page: only ids below this one
  show <id>                everything about one dead letter: error, stack, origin, headers, payload
  replay <id>...           send the original record back to its topic (needs --kafka); consumers apply it
                           through their inbox, so replaying twice applies nothing twice
      --all                every dead letter matching --topic/--group (status dead)
  discard <id>...          mark as handled by a person; the copy on <topic>.dlq stays (Kafka cannot delete)
      --all                every dead letter matching --topic/--group (status dead)
      --actor <name>       who acted, recorded on the row (default: the OS user)

  --pg <url>               Postgres (or ZEROLOSS_PG_URL)
  --schema <name>          zeroloss schema (default: zeroloss)
  --kafka <brokers>        comma-separated host:port, for replay (or ZEROLOSS_KAFKA_BROKERS)
  --json                   machine-readable output

Exit status: 0 done, 1 some id failed or was not found, 2 bad usage.

Kafka with TLS or SASL: --kafka-tls, --kafka-ca <file>, --kafka-sasl <mechanism>, --kafka-username,
--kafka-password-file <file>, --config-file <file.json> … (all of them: zeroloss help kafka)`;

const STATUSES = ['dead', 'replayed', 'discarded', 'all'] as const;

export async function dlqCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...connectionOptions,
    status: { type: 'string' },
    topic: { type: 'string' },
    group: { type: 'string' },
    limit: { type: 'string' },
    before: { type: 'string' },
    all: { type: 'boolean' },
    actor: { type: 'string' },
  });
  const [action, ...ids] = positionals;
  if (values.help || !action) {
    console.log(dlqHelp);
    return values.help ? 0 : 2;
  }
  const status = values.status ?? 'dead';
  if (!(STATUSES as readonly string[]).includes(status)) {
    throw new ZerolossError('ZL_INVALID_CONFIG', `--status must be one of ${STATUSES.join(', ')}`);
  }
  const store = postgres(pgUrl(values.pg), { schema: values.schema, max: 2 });
  const queue = store.deadLetters;
  const actor = values.actor ?? safeUser();
  const filter: DeadLetterFilter = {
    status: status === 'all' ? undefined : (status as DeadLetterStatus),
    topic: values.topic,
    groupId: values.group,
  };
  try {
    switch (action) {
      case 'list': {
        const rows = await queue.list({ ...filter, limit: intOption(values.limit, 'limit', 50), before: values.before });
        print(values.json, rows, () => formatList(rows));
        return 0;
      }
      case 'show': {
        if (ids.length !== 1) throw new ZerolossError('ZL_INVALID_CONFIG', 'dlq show takes one id');
        const row = await queue.get(ids[0] as string);
        if (!row) {
          console.error(`dlq: no dead letter ${ids[0]}`);
          return 1;
        }
        print(values.json, { ...row, payload: row.payload.toString('base64') }, () => formatDetail(row));
        return 0;
      }
      case 'replay':
      case 'discard': {
        const targets = values.all ? await deadLetterIds(queue, { ...filter, status: 'dead' }) : ids;
        if (targets.length === 0) {
          if (!values.all) throw new ZerolossError('ZL_INVALID_CONFIG', `dlq ${action} needs ids or --all`);
          print(values.json, [], () => 'dlq: nothing to do');
          return 0;
        }
        // --all replays what was open when listed: one another operator discarded since is left alone.
        const results =
          action === 'replay' ? await replay(queue, targets, actor, values, values.all === true) : await discard(queue, targets, actor);
        print(values.json, results, () =>
          results.map((r) => `${r.id}: ${r.ok ? (action === 'replay' ? 'replayed' : 'discarded') : `FAILED ${r.error}`}`).join('\n'),
        );
        return results.every((r) => r.ok) ? 0 : 1;
      }
      default:
        throw new ZerolossError('ZL_INVALID_CONFIG', `unknown dlq action ${JSON.stringify(action)}: use list, show, replay or discard`);
    }
  } finally {
    await store.close();
  }
}

async function replay(
  queue: Store['deadLetters'],
  ids: string[],
  actor: string,
  values: Parameters<typeof kafkaSettings>[0],
  skipDiscarded: boolean,
) {
  const transport = kafka({ ...kafkaSettings(values), publisher: { clientId: 'zeroloss-dlq' } });
  try {
    return await replayDeadLetters(queue, transport.publisher, ids, actor, { skipDiscarded });
  } finally {
    await transport.close();
  }
}

async function discard(queue: Store['deadLetters'], ids: string[], actor: string) {
  const results: Array<{ id: string; ok: boolean; error?: string }> = [];
  for (const id of ids) {
    const ok = await queue.discard(id, actor);
    results.push(ok ? { id, ok } : { id, ok, error: 'no open dead letter with this id' });
  }
  return results;
}

function formatList(rows: DeadLetterSummary[]): string {
  if (rows.length === 0) return 'dlq: no dead letters';
  const lines = rows.map((r) =>
    [
      r.id.padStart(6),
      r.status.padEnd(9),
      `${r.topic}/${r.partition}/${r.offset}`,
      r.type ?? '-',
      `attempts=${r.attempts}`,
      r.createdAt.toISOString(),
      r.error.slice(0, 120),
    ].join('  '),
  );
  return ['    id  status     origin  type  attempts  created  error', ...lines].join('\n');
}

function formatDetail(r: DeadLetterDetail): string {
  const text = r.payload.toString('utf8');
  const payload = Buffer.from(text, 'utf8').equals(r.payload) ? text : `(base64) ${r.payload.toString('base64')}`;
  return [
    `dead letter ${r.id} (${r.status}${r.resolvedBy ? ` by ${r.resolvedBy} at ${r.resolvedAt?.toISOString()}` : ''}, replayed ${r.replayCount}x)`,
    `  group          ${r.groupId}`,
    `  origin         ${r.topic} partition ${r.partition} offset ${r.offset}`,
    `  message        id ${r.messageId ?? '-'}, type ${r.type ?? '-'}, key ${r.key}, idempotency key ${r.idempotencyKey}`,
    `  attempts       ${r.attempts} (first failure ${r.firstFailureAt.toISOString()}, last ${r.lastFailureAt.toISOString()})`,
    `  error          ${r.error} (code ${r.errorCode})`,
    `  on .dlq topic  ${r.publishedAt ? r.publishedAt.toISOString() : r.copyError ? `not written (${r.copyError}); the table holds it` : 'not (yet) published'}`,
    ...(r.details ? [`  details        ${JSON.stringify(r.details)}`] : []),
    '  stack',
    ...(r.stack ?? '-').split('\n').map((l) => `    ${l}`),
    '  headers',
    ...Object.entries(r.headers).map(([k, v]) => `    ${k}: ${v}`),
    '  payload',
    `    ${payload}`,
  ].join('\n');
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
