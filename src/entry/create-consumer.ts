import type { Registry } from 'prom-client';
import { ZerolossError } from '../core/errors.ts';
import { startHealthServer } from '../adapters/http/health-server.ts';
import type { Cache, Store, Transport } from '../ports/backends.ts';
import { Consumer } from '../consumer/consumer.ts';
import type { ConsumerConfig } from '../consumer/consumer-config.ts';

export type ConsumerOptions = ConsumerConfig & {
  /** The business database: effects, inbox rows and dead letters commit here. */
  store: Pick<Store, 'db' | 'inbox' | 'deadLetters'>;
  /** Where records come from; its publisher (when it has one) sends retry copies and `.dlq` copies. */
  transport: Pick<Transport, 'subscriber'> & Partial<Pick<Transport, 'publisher'>>;
  /** Optional fast path for duplicates (`redis(url)`); correctness never depends on it. */
  cache?: Pick<Cache, 'inboxCache'>;
  registry?: Registry;
  /** Serve /healthz, /readyz and /metrics from `start` to `stop` (host default 0.0.0.0; port 0 picks one). */
  health?: { port: number; host?: string };
};

/**
 * The consumer runtime: each message's business effect applied once, on at-least-once delivery. Wired
 * here, in a composition root, because `health` needs the HTTP probe server, an adapter.
 */
export function createConsumer(options: ConsumerOptions): Consumer {
  const { store, transport, cache, registry, health, ...config } = options ?? ({} as ConsumerOptions);
  if (typeof store?.db?.query !== 'function' || store.inbox === undefined || store.deadLetters === undefined) {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      'createConsumer needs a store: createConsumer({ store: postgres(…), transport: kafka(…), groupId, topics })',
      {
        details: { field: 'store' },
      },
    );
  }
  if (typeof transport?.subscriber?.subscribe !== 'function') {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      'createConsumer needs a transport: createConsumer({ store, transport: kafka(…), groupId, topics })',
      {
        details: { field: 'transport' },
      },
    );
  }
  return new Consumer({
    subscriber: transport.subscriber,
    publisher: transport.publisher,
    db: store.db,
    inbox: store.inbox,
    deadLetters: store.deadLetters,
    cache: cache?.inboxCache,
    registry,
    health,
    startHealthServer,
    config,
  });
}
