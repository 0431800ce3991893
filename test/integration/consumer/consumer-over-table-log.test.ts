import { TableLogAdmin } from '../../../src/adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../../../src/adapters/table-log/table-log-publisher.ts';
import { TableLogSubscriber } from '../../../src/adapters/table-log/table-log-subscriber.ts';
import { consumerOverTransport } from '../../helpers/consumer-over-transport.ts';

// The embedded Postgres log (no Kafka): its tables live in the test's own schema, dropped with it.
consumerOverTransport('the embedded Postgres log transport', async ({ db, schema }) => {
  const topic = 'orders';
  const admin = new TableLogAdmin(db, { schema });
  for (const t of [topic, `${topic}.dlq`, `${topic}.retry.1`]) await admin.createTopic(t, 4);
  return {
    topic,
    publisher: new TableLogPublisher(db, { schema }),
    subscriber: () => new TableLogSubscriber(db, { schema, heartbeatIntervalMs: 200, sessionTimeoutMs: 2_000, pollIntervalMs: 100 }),
    retried: async () => (await admin.endOffsets(`${topic}.retry.1`)).reduce((sum, p) => sum + Number(p.high - p.low), 0),
    cleanup: async () => {},
  };
});
