import { ZerolossError } from '../../core/errors.ts';
import {
  discardDeadLettersAudited,
  discardParked,
  listStuckWork,
  releaseParked,
  replayDeadLettersAudited,
} from '../../operations/intervention.ts';
import { parseDuration } from '../../operations/time-window.ts';
import { connectionOptions, intOption, parse, print } from '../args.ts';
import { withOps } from '../ops-context.ts';

export const parkedHelp = `Usage: zeroloss parked <action> [ids...] --pg <url> [options]

Manual intervention: what keeps failing, for a person to fix and release. Parked outbox rows are messages
the relay gave up on (too many attempts, or rejected for good); dead letters are messages a consumer gave
up on. Every action is recorded in the audit with who, when and why.

  list                       parked outbox rows, parked rows of the state-column sources declared in
                             --config-file, and open dead letters, with their reasons
      --topic <topic>        only this topic (outbox rows and dead letters)
      --limit <n>            rows per kind (default 50)
  release <message-id>...    parked rows back to pending with attempts 0; the relay sends them again
                             (a source's row: its message id, or <source>:<row id>; its state column
                             goes back to 0)
  discard <message-id>...    remove parked rows from the outbox for good (content kept in the audit);
                             they stop holding back later messages of their key. Needs --reason. A
                             source's business row is never deleted or changed: it is only given up
                             (never sent, no longer parked nor holding its key back)
  replay-dlq <dead-letter-id>...   send dead letters back to their topic (needs --kafka); the inbox
                             makes a replay of something applied a skipped duplicate
  discard-dlq <dead-letter-id>...  mark dead letters handled without replaying. Needs --reason
  audit                      recent audit entries
      --since <duration>     how far back (default 24h)

  --reason <text>            why (required for discard and discard-dlq)
  --actor <name>             who (default: the OS user)
  --config-file <f.json>     its "sources": state-column tables whose parked rows are listed and acted on
  --pg <url>, --schema <name>, --kafka <brokers>, --json

Exit status: 0 done, 1 some id was not parked / not found, 2 bad usage.

Kafka with TLS or SASL: --kafka-tls, --kafka-ca <file>, --kafka-sasl <mechanism>, --kafka-username,
--kafka-password-file <file>, --config-file <file.json> … (all of them: zeroloss help kafka)`;

export async function parkedCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...connectionOptions,
    topic: { type: 'string' },
    limit: { type: 'string' },
    reason: { type: 'string' },
    actor: { type: 'string' },
    since: { type: 'string' },
  });
  const [action, ...ids] = positionals;
  if (values.help || !action) {
    console.log(parkedHelp);
    return values.help ? 0 : 2;
  }
  const who = { actor: values.actor, reason: values.reason };
  const needIds = () => {
    if (ids.length === 0) throw new ZerolossError('ZL_INVALID_CONFIG', `parked ${action} needs ids`);
  };
  return withOps(values, action === 'replay-dlq' ? 'required' : 'none', async (ops) => {
    switch (action) {
      case 'list': {
        const work = await listStuckWork(
          { store: ops.store, deadLetters: ops.deadLetters, sources: await ops.sources() },
          { limit: intOption(values.limit, 'limit', 50), topic: values.topic },
        );
        print(values.json, work, () =>
          [
            `parked outbox rows: ${work.parked.length}`,
            ...work.parked.map(
              (p) =>
                `  ${p.messageId}  ${p.topic}  ${p.type}  key ${p.key}  attempts ${p.attempts}  since ${p.modifiedAt.toISOString()}  ${p.lastError ?? '-'}`,
            ),
            ...(work.sourceRows.length > 0 ? [`parked source rows: ${work.sourceRows.length}`] : []),
            ...work.sourceRows.map(
              (p) =>
                `  ${p.messageId ?? `${p.source}:${p.rowId}`}  source ${p.source} row ${p.rowId}  ${p.type ?? '-'}  key ${p.key ?? '-'}  attempts ${p.attempts}  since ${p.modifiedAt.toISOString()}  ${p.lastError ?? '-'}`,
            ),
            `open dead letters: ${work.deadLetters.length}`,
            ...work.deadLetters.map(
              (d) =>
                `  ${d.id}  ${d.groupId}  ${d.topic}/${d.partition}/${d.offset}  message ${d.messageId ?? '-'}  ${d.errorCode}: ${d.error.slice(0, 120)}`,
            ),
          ].join('\n'),
        );
        return 0;
      }
      case 'release': {
        needIds();
        const r = await releaseParked(ops.store, ids, who, await ops.sources());
        print(values.json, r, () =>
          [...r.released.map((id) => `${id}: released`), ...r.notParked.map((id) => `${id}: not parked`)].join('\n'),
        );
        return r.notParked.length > 0 ? 1 : 0;
      }
      case 'discard': {
        needIds();
        const r = await discardParked(ops.store, ids, who, await ops.sources());
        print(values.json, r, () =>
          [...r.discarded.map((id) => `${id}: discarded`), ...r.notParked.map((id) => `${id}: not parked`)].join('\n'),
        );
        return r.notParked.length > 0 ? 1 : 0;
      }
      case 'replay-dlq':
      case 'discard-dlq': {
        needIds();
        const results =
          action === 'replay-dlq'
            ? await replayDeadLettersAudited({ store: ops.store, deadLetters: ops.deadLetters, publisher: ops.publisher() }, ids, who)
            : await discardDeadLettersAudited({ store: ops.store, deadLetters: ops.deadLetters }, ids, who);
        print(values.json, results, () =>
          results.map((r) => `${r.id}: ${r.ok ? (action === 'replay-dlq' ? 'replayed' : 'discarded') : `FAILED ${r.error}`}`).join('\n'),
        );
        return results.every((r) => r.ok) ? 0 : 1;
      }
      case 'audit': {
        const entries = await ops.store.recentAudit(parseDuration(values.since ?? '24h'), intOption(values.limit, 'limit', 200));
        print(
          values.json,
          entries,
          () =>
            entries
              .map((e) => `${e.at.toISOString()}  ${e.actor}  ${e.action}  ${e.subject}${e.reason ? `  (${e.reason})` : ''}`)
              .join('\n') || 'no audit entries',
        );
        return 0;
      }
      default:
        throw new ZerolossError(
          'ZL_INVALID_CONFIG',
          `unknown parked action ${JSON.stringify(action)}: use list, release, discard, replay-dlq, discard-dlq or audit`,
        );
    }
  });
}
