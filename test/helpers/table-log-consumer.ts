import { TableLogPublisher } from '../../src/adapters/table-log/table-log-publisher.ts';
import { TableLogSubscriber } from '../../src/adapters/table-log/table-log-subscriber.ts';
import type { Consumer } from '../../src/consumer/consumer.ts';
import type { ConsumerConfig } from '../../src/consumer/consumer-config.ts';
import type { Database } from '../../src/ports/sql-executor.ts';
import { testConsumer } from './test-consumer.ts';

/**
 * A consumer over the table log in the test's own schema, with short group timings (a rebalance in well
 * under a second) and commits every 50 ms, publishing its copies (dead letters, retries) to the same log.
 */
export function tableLogConsumer(env: { db: Database; schema: string }, config: ConsumerConfig): Consumer {
  return testConsumer({
    subscriber: new TableLogSubscriber(env.db, {
      schema: env.schema,
      heartbeatIntervalMs: 200,
      sessionTimeoutMs: 2_000,
      pollIntervalMs: 50,
    }),
    db: env.db,
    publisher: new TableLogPublisher(env.db, { schema: env.schema }),
    schema: env.schema,
    config: { commitIntervalMs: 50, ...config },
  });
}
