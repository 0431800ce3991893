import { ZerolossError } from '../../core/errors.ts';
import type { Transport } from '../../ports/backends.ts';
import { LazyParts } from '../shared/lazy-parts.ts';
import { type RedisStreamsAdminConfig, RedisStreamsAdmin } from './redis-streams-admin.ts';
import { type RedisStreamsInspectorConfig, RedisStreamsInspector } from './redis-streams-inspector.ts';
import { type RedisStreamsPublisherConfig, RedisStreamsPublisher } from './redis-streams-publisher.ts';
import { type RedisStreamsSubscriberConfig, RedisStreamsSubscriber } from './redis-streams-subscriber.ts';

export interface RedisStreamsOptions {
  /** Namespace of the transport's keys; publishers and subscribers of one deployment share it. Default 'zl'. */
  prefix?: string;
  publisher?: Omit<RedisStreamsPublisherConfig, 'url' | 'prefix'>;
  subscriber?: Omit<RedisStreamsSubscriberConfig, 'url' | 'prefix'>;
  admin?: Omit<RedisStreamsAdminConfig, 'url' | 'prefix'>;
  inspector?: Omit<RedisStreamsInspectorConfig, 'url' | 'prefix'>;
}

export interface RedisStreamsTransport extends Transport {
  readonly kind: 'redis-streams';
  readonly publisher: RedisStreamsPublisher;
  readonly subscriber: RedisStreamsSubscriber;
  readonly topicAdmin: RedisStreamsAdmin;
  /** Reads the streams with XRANGE (no consumer group), for reconcile, trace and status. */
  readonly inspector: RedisStreamsInspector;
}

/** Redis Streams as the transport: a stream per partition, consumer groups of our own with leases and offsets. */
export function redisStreams(url: string, options: RedisStreamsOptions = {}): RedisStreamsTransport {
  if (typeof url !== 'string' || url.length === 0) {
    throw new ZerolossError('ZL_INVALID_CONFIG', "redisStreams needs a URL: redisStreams('redis://127.0.0.1:6379')", {
      details: { field: 'url' },
    });
  }
  const prefix = options.prefix ?? 'zl';
  const subscriber = new RedisStreamsSubscriber({ ...options.subscriber, url, prefix });
  const parts = new LazyParts();
  const publisher = parts.part(
    () => new RedisStreamsPublisher({ ...options.publisher, url, prefix }),
    (p) => p.close(),
  );
  const admin = parts.part(
    () => new RedisStreamsAdmin({ ...options.admin, url, prefix }),
    (a) => a.close(),
  );
  const inspector = parts.part(
    () => new RedisStreamsInspector({ ...options.inspector, url, prefix }),
    (i) => i.close(),
  );
  return {
    kind: 'redis-streams',
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
      const before = (await admin().partitions([topic])).get(topic);
      const count = await admin().createTopic(topic, partitions);
      return { created: before === undefined, partitions: count };
    },
    close: () => parts.close(),
  };
}
