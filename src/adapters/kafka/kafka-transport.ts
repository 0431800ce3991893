import { ZerolossError } from '../../core/errors.ts';
import type { Transport } from '../../ports/backends.ts';
import { LazyParts } from '../shared/lazy-parts.ts';
import { KafkaInspector, type KafkaInspectorOptions } from './kafka-inspector.ts';
import { type KafkaPublisherConfig, KafkaPublisher, kafkaPublisherConfigSchema } from './kafka-publisher.ts';
import { type KafkaSubscriberConfig, KafkaSubscriber } from './kafka-subscriber.ts';
import { KafkaTopicAdmin } from './kafka-topic-admin.ts';
import { parseConfig } from '../../core/config.ts';

export interface KafkaOptions {
  /** Bootstrap brokers, `host:port`; set once for every client of the bundle. */
  brokers: string[];
  /** Producer settings of the relay and of retry and dead-letter copies (acks=all and idempotence are fixed). */
  publisher?: Omit<KafkaPublisherConfig, 'brokers'>;
  /** Consumer-group settings (session timeout, isolation, where a new group starts). */
  subscriber?: Omit<KafkaSubscriberConfig, 'brokers'>;
  /** The operations tools' reader. */
  inspector?: Omit<KafkaInspectorOptions, 'brokers'>;
}

const KEYS = new Set(['brokers', 'publisher', 'subscriber', 'inspector']);

export interface KafkaTransport extends Transport {
  readonly kind: 'kafka';
  readonly publisher: KafkaPublisher;
  readonly subscriber: KafkaSubscriber;
  readonly inspector: KafkaInspector;
  readonly admin: KafkaTopicAdmin;
}

/**
 * Kafka as zeroloss's transport: publisher (acks=all, idempotent), consumer groups with manual commits, the
 * operations tools' reader and topic admin. Clients connect on first use and `close` closes them.
 */
export function kafka(options: KafkaOptions): KafkaTransport {
  if (options === null || typeof options !== 'object' || !Array.isArray(options.brokers) || options.brokers.length === 0) {
    throw new ZerolossError('ZL_INVALID_CONFIG', "kafka needs its brokers: kafka({ brokers: ['host:9092'] })", {
      details: { field: 'brokers' },
    });
  }
  for (const key of Object.keys(options)) {
    if (!KEYS.has(key)) {
      throw new ZerolossError('ZL_INVALID_CONFIG', `unknown kafka option '${key}' (known: ${[...KEYS].join(', ')})`, { details: { field: key } });
    }
  }
  const brokers = options.brokers;
  // Validated now, so a bad setting fails where the bundle is made, not at the relay's first send.
  const publisherConfig = parseConfig(kafkaPublisherConfigSchema, { ...options.publisher, brokers }, 'kafka publisher');
  const subscriber = new KafkaSubscriber({ ...options.subscriber, brokers });
  const parts = new LazyParts();
  const publisher = parts.part(
    () => new KafkaPublisher(publisherConfig),
    (p) => p.close(),
  );
  const inspector = parts.part(
    () => new KafkaInspector({ ...options.inspector, brokers }),
    (i) => i.close(),
  );
  let admin: KafkaTopicAdmin | undefined;
  return {
    kind: 'kafka',
    get publisher() {
      return publisher();
    },
    subscriber,
    get inspector() {
      return inspector();
    },
    get admin() {
      admin ??= new KafkaTopicAdmin(inspector().admin);
      return admin;
    },
    ensureTopic(topic, partitions) {
      admin ??= new KafkaTopicAdmin(inspector().admin);
      return admin.ensureTopic(topic, partitions);
    },
    close: () => parts.close(),
  };
}
