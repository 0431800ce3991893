import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { RabbitMqAdmin } from '../../src/adapters/rabbitmq/rabbitmq-admin.ts';
import { RabbitMqPublisher } from '../../src/adapters/rabbitmq/rabbitmq-publisher.ts';
import { RabbitMqSubscriber } from '../../src/adapters/rabbitmq/rabbitmq-subscriber.ts';
import { groupUnderChurn } from '../helpers/group-under-churn.ts';
import { waitFor } from '../helpers/wait-for.ts';

const RABBITMQ_URL = process.env.ZL_TEST_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const execFileAsync = promisify(execFile);
const FAST = { heartbeatIntervalMs: 100, sessionTimeoutMs: 1_500, offsetRetentionMs: 600_000 } as const;

// Each namespace is a topic and group named after a unique prefix; a dead member's connection, and with
// it its lock queues, ends with the process, so the survivor takes over its partitions.
await groupUnderChurn(
  {
    name: 'RabbitMQ',
    takenOver: 'partitions',
    async open(partitions) {
      const prefix = `zl-it-${randomBytes(4).toString('hex')}`;
      const topic = `${prefix}-events`;
      const group = `${prefix}-group`;
      const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
      await admin.createTopic(topic, partitions);
      const publisher = new RabbitMqPublisher({ url: RABBITMQ_URL });
      return {
        prefix,
        topic,
        group,
        publisher,
        subscriber: new RabbitMqSubscriber({ url: RABBITMQ_URL, clientId: prefix, ...FAST }),
        async cleanup() {
          await publisher.close();
          await admin.deleteTopic(topic);
          await admin.deleteGroupOffsets(group, topic, partitions);
          await admin.close();
        },
      };
    },
    workerSubscriber: () => new RabbitMqSubscriber({ url: RABBITMQ_URL, ...FAST }),
    connectionFault: {
      title: 'a member whose connection the broker closes mid-stream delivers every record, keys in order',
      timeoutMs: 120_000,
      rounds: 5,
      recordsPerRound: 100,
      drainTimeoutMs: 60_000,
      connectionsPerMember: 1,
      // Closed on the broker side while the member reads: its lock queues and consumers go with it.
      async breakConnections(prefix) {
        const pid = await waitFor(() => connectionPid(`zeroloss-${prefix}-`), {
          timeoutMs: 30_000,
          what: "the member's connection to be back",
        });
        await execFileAsync('rabbitmqctl', ['close_connection', pid, 'zeroloss test: connection closed on purpose']);
        return 1;
      },
    },
  },
  import.meta.filename,
);

/** The broker's pid of the connection whose name starts with `name`, via rabbitmqctl (the broker is local). */
async function connectionPid(name: string): Promise<string | undefined> {
  const { stdout } = await execFileAsync('rabbitmqctl', ['list_connections', '--quiet', '--no-table-headers', 'pid', 'client_properties']);
  const line = stdout.split('\n').find((l) => l.includes(name));
  return line?.split('\t')[0]?.trim();
}
