import { ZerolossError } from '../../core/errors.ts';
import type { Transport } from '../../ports/backends.ts';
import { LazyParts } from '../shared/lazy-parts.ts';
import { KafkaInspector, type KafkaInspectorOptions } from './kafka-inspector.ts';
import { type KafkaPublisherConfig, KafkaPublisher, kafkaPublisherConfigSchema } from './kafka-publisher.ts';
import { type KafkaSubscriberConfig, KafkaSubscriber } from './kafka-subscriber.ts';
import { KafkaGroupAdmin } from './kafka-group-admin.ts';
import { KafkaTopicAdmin } from './kafka-topic-admin.ts';
import { KafkaTransactionalProcessor, type TransactionalProcessorConfig, type Transform } from './kafka-transactional-processor.ts';
import { type KafkaSaslOptions, type KafkaTlsOptions, kafkaClientConnection } from './kafka-connection.ts';
import { parseConfig } from '../../core/config.ts';

export interface KafkaOptions {
  /** Bootstrap brokers, `host:port`; set once for every client of the bundle. */
  brokers: string[];
  /**
   * TLS towards the brokers, for every client of the bundle: `true` trusts the system CAs; an object sets the
   * CA, a client certificate and key, the server name, or `rejectUnauthorized: false` (a lab only).
   */
  tls?: KafkaTlsOptions | boolean;
  /**
   * SASL for every client of the bundle: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with username and password
   * (a string, or a function asked on each authentication), or OAUTHBEARER with a token function.
   */
  sasl?: KafkaSaslOptions;
  /** Producer settings of the relay and of retry and dead-letter copies (acks=all and idempotence are fixed). */
  publisher?: Omit<KafkaPublisherConfig, 'brokers' | 'tls' | 'sasl'>;
  /** Consumer-group settings (session timeout, isolation, where a new group starts). */
  subscriber?: Omit<KafkaSubscriberConfig, 'brokers' | 'tls' | 'sasl'>;
  /** The operations tools' reader. */
  inspector?: Omit<KafkaInspectorOptions, 'brokers' | 'tls' | 'sasl'>;
}

const KEYS = new Set(['brokers', 'tls', 'sasl', 'publisher', 'subscriber', 'inspector']);
/** Connection settings belong to the bundle, once; inside a client's settings they would differ per client. */
const CONNECTION_KEYS = ['brokers', 'tls', 'sasl'];

export interface KafkaTransport extends Transport {
  readonly kind: 'kafka';
  readonly publisher: KafkaPublisher;
  readonly subscriber: KafkaSubscriber;
  readonly inspector: KafkaInspector;
  readonly admin: KafkaTopicAdmin;
  /**
   * Consume-transform-produce inside Kafka transactions, on this bundle's brokers and security: outputs and
   * input offsets commit together, exactly once within Kafka (a side effect outside Kafka is the inbox
   * consumer's job). Each call makes a processor; `start` and `stop` it yourself.
   */
  transactionalProcessor(
    config: Omit<TransactionalProcessorConfig, 'brokers' | 'tls' | 'sasl'>,
    transform: Transform,
  ): KafkaTransactionalProcessor;
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
      throw new ZerolossError('ZL_INVALID_CONFIG', `unknown kafka option '${key}' (known: ${[...KEYS].join(', ')})`, {
        details: { field: key },
      });
    }
  }
  for (const part of ['publisher', 'subscriber', 'inspector'] as const) {
    const key = CONNECTION_KEYS.find((k) => Object.hasOwn(options[part] ?? {}, k));
    if (key) {
      throw new ZerolossError('ZL_INVALID_CONFIG', `kafka option ${part}.${key}: set ${key} once, at the top of kafka({ ... })`, {
        details: { field: `${part}.${key}` },
      });
    }
  }
  const { brokers, tls, sasl } = options;
  // Validated now, so a bad setting fails where the bundle is made, not at the relay's first send.
  kafkaClientConnection({ brokers, tls, sasl });
  const publisherConfig = parseConfig(kafkaPublisherConfigSchema, { ...options.publisher, brokers }, 'kafka publisher');
  const subscriber = new KafkaSubscriber({ ...options.subscriber, brokers, tls, sasl });
  const parts = new LazyParts();
  const publisher = parts.part(
    () => new KafkaPublisher({ ...publisherConfig, tls, sasl }),
    (p) => p.close(),
  );
  const inspector = parts.part(
    () => new KafkaInspector({ ...options.inspector, brokers, tls, sasl }),
    (i) => i.close(),
  );
  let admin: KafkaTopicAdmin | undefined;
  let groupAdmin: KafkaGroupAdmin | undefined;
  // Over the inspector's admin client: one connection serves reads and topic changes.
  const topicAdmin = () => {
    admin ??= new KafkaTopicAdmin(inspector().admin);
    return admin;
  };
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
      return topicAdmin();
    },
    get groups() {
      groupAdmin ??= new KafkaGroupAdmin(inspector().admin);
      return groupAdmin;
    },
    ensureTopic: (topic, partitions) => topicAdmin().ensureTopic(topic, partitions),
    transactionalProcessor(config, transform) {
      const misplaced = CONNECTION_KEYS.find((k) => Object.hasOwn(config ?? {}, k));
      if (misplaced) {
        throw new ZerolossError('ZL_INVALID_CONFIG', `transactionalProcessor: ${misplaced} is the bundle's, set once in kafka({ ... })`, {
          details: { field: misplaced },
        });
      }
      return new KafkaTransactionalProcessor({ config: { ...config, brokers, tls, sasl }, transform });
    },
    close: () => parts.close(),
  };
}
