import { TableLogAdmin } from '../../src/adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../../src/adapters/table-log/table-log-publisher.ts';
import { TableLogSubscriber } from '../../src/adapters/table-log/table-log-subscriber.ts';
import { freshSchema } from '../helpers/pg.ts';
import { FAST_GROUP } from '../helpers/table-log.ts';
import { transportConformance } from './transport-conformance.ts';

transportConformance('table log on Postgres', async () => {
  const env = await freshSchema('zltl');
  const admin = new TableLogAdmin(env.db, { schema: env.schema });
  return {
    publisher: new TableLogPublisher(env.db, { schema: env.schema }),
    subscriber: new TableLogSubscriber(env.db, { schema: env.schema, ...FAST_GROUP }),
    async createTopic(topic, partitions) {
      await admin.createTopic(topic, partitions);
    },
    cleanup: env.cleanup,
  };
});
