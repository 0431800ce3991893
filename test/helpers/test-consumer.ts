import { startHealthServer } from '../../src/adapters/http/health-server.ts';
import { PostgresDeadLetterStore } from '../../src/adapters/postgres/postgres-dead-letter-store.ts';
import { PostgresInboxStore } from '../../src/adapters/postgres/postgres-inbox-store.ts';
import { Consumer, type ConsumerOptions } from '../../src/consumer/consumer.ts';

export type TestConsumerOptions = Omit<ConsumerOptions, 'inbox' | 'deadLetters'> &
  Partial<Pick<ConsumerOptions, 'inbox' | 'deadLetters'>> & {
    /** Schema of the test's inbox and dead_letter tables; default 'zeroloss'. */
    schema?: string;
  };

/**
 * A Consumer over the Postgres inbox and dead_letter tables in the schema the test migrated: the consumer
 * takes its stores as ports (it builds no adapter), so tests that do not build a whole store bundle get
 * the two here. A test that brings its own stores passes them and they are used as they are.
 */
export function testConsumer(options: TestConsumerOptions): Consumer {
  const { schema = 'zeroloss', inbox, deadLetters, ...rest } = options;
  return new Consumer({
    startHealthServer,
    ...rest,
    inbox: inbox ?? new PostgresInboxStore(rest.db, { schema }),
    deadLetters: deadLetters ?? new PostgresDeadLetterStore(rest.db, { schema }),
  });
}
