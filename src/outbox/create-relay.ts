import type { Registry } from 'prom-client';
import { ZerolossError } from '../core/errors.ts';
import type { Store, Transport } from '../ports/backends.ts';
import type { BrokerInspector } from '../ports/broker-inspector.ts';
import type { Logger } from '../ports/logger.ts';
import type { RelaySource } from '../ports/outbox-store.ts';
import type { Tracing } from '../ports/tracing.ts';
import { Relay, type RelayConfig } from './relay.ts';
import { createShardedWalRelay, createWalRelay, type ShardedWalRelayOptions, type WalRelayOptions } from './wal-create-relay.ts';
import type { WalRelay } from './wal-relay.ts';
import type { ShardedWalRelay } from './wal-sharded-relay.ts';

export interface RelayOptions extends RelayConfig {
  /** The database the rows are committed in: its outbox table is the default source, its connection wakes the relay. */
  store: Pick<Store, 'relaySource' | 'db'>;
  /**
   * Where the rows are sent. Its `inspector`, when it has one (Kafka, the table log, Redis Streams,
   * RabbitMQ), lets the relay find on the broker a row a dead relay sent but never recorded, and mark it
   * sent instead of sending it again; without one such a row is resent (a duplicate the inbox absorbs).
   */
  transport: Pick<Transport, 'publisher'> & Partial<Pick<Transport, 'inspector'>>;
  /** What to relay; default the store's outbox table. Add `store.stateColumnSource({…})` for a business table with a send-state column. */
  sources?: RelaySource[];
  /** Where the relay's metrics go; default a registry of its own (`relay.registry`). */
  registry?: Registry;
  /** 'poll' (default): claim rows with leases. 'wal': read the log, see WalRelayOptions and docs/wal-relay.md. */
  mode?: 'poll';
  /** Send spans, parented on the trace context stored at enqueue: `otelTracing({ system: 'kafka' })`; default none. */
  tracing?: Tracing;
  /** Where the relay logs (start/stop, failed and parked rows, errors): `defaultLogger()` or your pino; default silent. */
  logger?: Logger;
}

/**
 * The relay: sends committed rows to the transport and records the answer, with leases, backoff and
 * parking. With `mode: 'wal'` (Postgres with logical replication) it reads committed inserts from a
 * replication slot instead, and polls only for the rows that failed (docs/wal-relay.md).
 */
export function createRelay(options: RelayOptions): Relay;
export function createRelay(options: WalRelayOptions): WalRelay;
/** `wal: postgresWalShards(store, { url })`: a sharded outbox (docs/wal-relay.md, Shards). */
export function createRelay(options: ShardedWalRelayOptions): ShardedWalRelay;
export function createRelay(options: RelayOptions | WalRelayOptions | ShardedWalRelayOptions): Relay | WalRelay | ShardedWalRelay {
  if (options?.mode === 'wal') {
    const wal: unknown = options.wal;
    if (typeof (wal as { heartbeat?: unknown })?.heartbeat === 'function') return createShardedWalRelay(options as ShardedWalRelayOptions);
    return createWalRelay(options as WalRelayOptions);
  }
  const { store, transport, sources, registry, mode: _mode, tracing, logger, ...config } = options ?? ({} as RelayOptions);
  if (typeof store?.db?.query !== 'function') {
    throw new ZerolossError('ZL_INVALID_CONFIG', 'createRelay needs a store: createRelay({ store: postgres(…), transport: kafka(…) })', {
      details: { field: 'store' },
    });
  }
  if (typeof transport?.publisher?.publish !== 'function') {
    throw new ZerolossError('ZL_INVALID_CONFIG', 'createRelay needs a transport: createRelay({ store, transport: kafka(…) })', {
      details: { field: 'transport' },
    });
  }
  return new Relay({
    sources: sources ?? [store.relaySource],
    publisher: transport.publisher,
    inspector: lazyInspector(transport),
    db: store.db,
    registry,
    config,
    tracing,
    logger,
  });
}

/**
 * The transport's inspector, taken from the bundle at the first broker check instead of with the relay:
 * bundles build their parts on first use, and most relays never need a broker read (it opens a client).
 */
function lazyInspector(transport: Partial<Pick<Transport, 'inspector'>>): BrokerInspector | undefined {
  if (!('inspector' in transport)) return undefined;
  const inspector = (): BrokerInspector => {
    const found = transport.inspector;
    if (!found) throw new ZerolossError('ZL_INVALID_CONFIG', 'the transport has no inspector: rows a dead relay left are resent');
    return found;
  };
  return {
    listTopics: () => inspector().listTopics(),
    watermarks: (topic) => inspector().watermarks(topic),
    offsetsForTime: (topic, atMs) => inspector().offsetsForTime(topic, atMs),
    read: (ranges, stats) => inspector().read(ranges, stats),
    committedOffsets: (groupId) => inspector().committedOffsets(groupId),
  };
}
