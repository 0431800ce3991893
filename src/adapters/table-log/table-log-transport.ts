import { ZerolossError } from '../../core/errors.ts';
import type { Store, Transport } from '../../ports/backends.ts';
import type { CommittedOffset, TopicAdmin } from '../../ports/broker-inspector.ts';
import type { GroupAdmin } from '../../ports/group-admin.ts';
import { TableLogAdmin } from './table-log-admin.ts';
import { TableLogInspector } from './table-log-inspector.ts';
import { type TableLogPublisherConfig, TableLogPublisher } from './table-log-publisher.ts';
import { type TableLogSubscriberConfig, TableLogSubscriber } from './table-log-subscriber.ts';

export interface TableLogOptions {
  publisher?: Omit<TableLogPublisherConfig, 'schema'>;
  subscriber?: Omit<TableLogSubscriberConfig, 'schema'>;
}

export interface TableLogTransport extends Transport {
  readonly kind: 'table-log';
  readonly publisher: TableLogPublisher;
  readonly subscriber: TableLogSubscriber;
  readonly inspector: TableLogInspector;
  readonly admin: TopicAdmin;
  /** Group offsets, lag and retention of the log. */
  readonly logAdmin: TableLogAdmin;
  readonly groups: GroupAdmin;
}

/**
 * The embedded transport: a partitioned log in tables of the store's own database and schema (migration 3),
 * with consumer groups, leases and offsets. No broker to run; the relay's send is an insert there.
 */
export function tableLog(store: Pick<Store, 'db' | 'schema'>, options: TableLogOptions = {}): TableLogTransport {
  if (typeof store?.db?.query !== 'function') {
    throw new ZerolossError('ZL_INVALID_CONFIG', 'tableLog needs the store it lives in: tableLog(postgres(…)) or tableLog(pglite(…))', {
      details: { field: 'store' },
    });
  }
  const { db, schema } = store;
  const logAdmin = new TableLogAdmin(db, { schema });
  const admin: TopicAdmin = {
    async ensureTopic(topic, partitions) {
      const { created } = await logAdmin.createTopic(topic, partitions);
      const listed = (await logAdmin.listTopics()).find((t) => t.topic === topic);
      return { created, partitions: listed?.partitions ?? partitions };
    },
    createPartitions: (topic, total) => logAdmin.addPartitions(topic, total),
    async alterGroupOffsets(groupId: string, _offsets: CommittedOffset[]) {
      throw new ZerolossError(
        'ZL_INVALID_CONFIG',
        `the table log cannot move the offsets of group ${groupId}: forward the backlog instead`,
      );
    },
  };
  const publisher = new TableLogPublisher(db, { ...options.publisher, schema });
  return {
    kind: 'table-log',
    publisher,
    subscriber: new TableLogSubscriber(db, { ...options.subscriber, schema }),
    inspector: new TableLogInspector(db, { schema }),
    admin,
    logAdmin,
    groups: { deleteGroup: (groupId, topics) => logAdmin.deleteGroupOn(groupId, topics) },
    ensureTopic: (topic, partitions) => admin.ensureTopic(topic, partitions),
    // The log's clients are the store's connection, which the store closes.
    close: () => publisher.close(),
  };
}
