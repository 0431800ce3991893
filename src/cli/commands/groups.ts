import { ZerolossError } from '../../core/errors.ts';
import { deleteGroup } from '../../operations/delete-group.ts';
import { connectionOptions, parse, print } from '../args.ts';
import { brokerHelp, brokerOptions, withOps } from '../ops-context.ts';

export const groupsHelp = `Usage: zeroloss groups delete <group> --topic <topic> [--topic <topic> ...] --pg <url> <broker> [options]

Deletes what a consumer group that nobody runs any more committed on the topics, at the broker and in
the schema, and writes it to the audit:

  Kafka          the group's committed offsets on the topics, and the group once it has none left
  Redis Streams  the consumer group on each partition stream (pending entries included), its leases
  RabbitMQ       its offset queue per partition (left alone, each expires 7 days after its last use;
                 many short-lived groups make many queues)
  table log      its offsets and partition owners
  the schema     the positions it stored with its effects (offsetStore: 'database')

The inbox stays: a group started again under the same name reads from its startFrom again and applies
nothing twice. Refused while the group has a live member (exit 1, ZL_GROUP_ACTIVE): stop its consumers
first.

  --topic <topic>           a topic the group read (repeat for more)
  --kafka <brokers>         the broker is Kafka (or ZEROLOSS_KAFKA_BROKERS)
${brokerHelp}
  --reason <text>           why, for the audit
  --actor <name>            who (default: the OS user)
  --pg <url>, --schema <name>, --json`;

export async function groupsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...connectionOptions,
    ...brokerOptions,
    topic: { type: 'string', multiple: true },
    reason: { type: 'string' },
    actor: { type: 'string' },
  });
  const [action, groupId] = positionals;
  if (values.help || action !== 'delete' || !groupId) {
    console.log(groupsHelp);
    return values.help ? 0 : 2;
  }
  return withOps(values, 'optional', async (ops) => {
    if (!ops.groups) {
      throw new ZerolossError(
        'ZL_INVALID_CONFIG',
        'name the broker the group reads: --kafka <brokers>, --redis-streams <url>, --rabbitmq <url> or --table-log',
      );
    }
    const result = await deleteGroup(
      { groups: ops.groups, store: ops.store },
      { groupId, topics: values.topic ?? [], who: { actor: values.actor, reason: values.reason } },
    );
    print(values.json, result, () =>
      [
        `group ${result.groupId}: deleted on ${result.topics.join(', ')}`,
        `  broker: ${result.broker.length === 0 ? 'nothing was committed there' : result.broker.join(', ')}`,
        `  stored with the effects: ${
          result.storedOffsets.length === 0 ? 'none' : result.storedOffsets.map((o) => `${o.topic}[${o.partition}]@${o.offset}`).join(', ')
        }`,
      ].join('\n'),
    );
    return 0;
  });
}
