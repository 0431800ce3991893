import { ZerolossError } from '../../core/errors.ts';
import type { Transport } from '../../ports/backends.ts';
import { LazyParts } from '../shared/lazy-parts.ts';
import { type RabbitMqAdminConfig, RabbitMqAdmin } from './rabbitmq-admin.ts';
import { type RabbitMqInspectorConfig, RabbitMqInspector } from './rabbitmq-inspector.ts';
import { type RabbitMqPublisherConfig, RabbitMqPublisher } from './rabbitmq-publisher.ts';
import { type RabbitMqSubscriberConfig, RabbitMqSubscriber } from './rabbitmq-subscriber.ts';

export interface RabbitMqOptions {
  publisher?: Omit<RabbitMqPublisherConfig, 'url'>;
  subscriber?: Omit<RabbitMqSubscriberConfig, 'url'>;
  admin?: Omit<RabbitMqAdminConfig, 'url'>;
  inspector?: Omit<RabbitMqInspectorConfig, 'url'>;
}

export interface RabbitMqTransport extends Transport {
  readonly kind: 'rabbitmq';
  readonly publisher: RabbitMqPublisher;
  readonly subscriber: RabbitMqSubscriber;
  readonly topicAdmin: RabbitMqAdmin;
  /** Reads the partition streams with consumers of its own (nothing is taken), for reconcile, trace, status and the relay's broker check. */
  readonly inspector: RabbitMqInspector;
}

/** RabbitMQ as the transport: a stream queue per partition, publisher confirms, offsets tracked per group. */
export function rabbitmq(url: string, options: RabbitMqOptions = {}): RabbitMqTransport {
  if (typeof url !== 'string' || url.length === 0) {
    throw new ZerolossError('ZL_INVALID_CONFIG', "rabbitmq needs a URL: rabbitmq('amqp://guest:guest@127.0.0.1:5672')", {
      details: { field: 'url' },
    });
  }
  const subscriber = new RabbitMqSubscriber({ ...options.subscriber, url });
  const parts = new LazyParts();
  const publisher = parts.part(
    () => new RabbitMqPublisher({ ...options.publisher, url }),
    (p) => p.close(),
  );
  const admin = parts.part(
    () => new RabbitMqAdmin({ ...options.admin, url }),
    (a) => a.close(),
  );
  const inspector = parts.part(
    () => new RabbitMqInspector({ ...options.inspector, url }),
    (i) => i.close(),
  );
  return {
    kind: 'rabbitmq',
    get publisher() {
      return publisher();
    },
    subscriber,
    get topicAdmin() {
      return admin();
    },
    get groups() {
      return admin();
    },
    get inspector() {
      return inspector();
    },
    async ensureTopic(topic, partitions) {
      const before = await admin()
        .partitions(topic)
        .catch(() => 0);
      await admin().createTopic(topic, partitions);
      return { created: before === 0, partitions: await admin().partitions(topic) };
    },
    close: () => parts.close(),
  };
}
