import type { Registry } from 'prom-client';
import { ZerolossError } from '../core/errors.ts';
import type { Transport } from '../ports/backends.ts';
import type { Logger } from '../ports/logger.ts';
import type { Tracing } from '../ports/tracing.ts';
import type { WalShardSet } from '../ports/wal-shards.ts';
import type { WalLedger, WalStream } from '../ports/wal-stream.ts';
import type { RelayConfig } from './relay.ts';
import { WalRelay, type WalRelayConfig } from './wal-relay.ts';
import { ShardedWalRelay, type WalShardingConfig } from './wal-sharded-relay.ts';

export interface WalRelayOptions extends RelayConfig, WalRelayConfig {
  mode: 'wal';
  /** The slot and the outbox records of the store: `postgresWal(store, { url })` from `zeroloss/postgres`. */
  wal: { stream: WalStream; ledger: WalLedger };
  /** Where the rows are sent. */
  transport: Pick<Transport, 'publisher'>;
  /** Where the relay's metrics go; default a registry of its own (`relay.registry`). */
  registry?: Registry;
  /** Where both paths log: `defaultLogger()` or your pino; default silent. */
  logger?: Logger;
  /** Send spans, parented on the trace context stored at enqueue: `otelTracing({ system: 'kafka' })`; default none. */
  tracing?: Tracing;
}

const WAL_KEYS = new Set([
  'walBatchSize',
  'maxBufferedRows',
  'standbyRetryMs',
  'inPlaceAttempts',
  'heldKeysRefreshMs',
  'publishConcurrency',
  'batchesInFlight',
]);

/** A sharded outbox (docs/wal-relay.md, Shards): `wal` is `postgresWalShards(store, { url })`. */
export interface ShardedWalRelayOptions extends Omit<WalRelayOptions, 'wal'> {
  wal: WalShardSet;
  /** How the relays share the shards: membership timeout, orphan grace, check interval. */
  sharding?: WalShardingConfig;
}

/** The WAL relay over a sharded outbox; settings as `createWalRelay`'s, each applied to every shard. */
export function createShardedWalRelay(options: ShardedWalRelayOptions & { store?: unknown }): ShardedWalRelay {
  const { mode: _mode, wal, transport, registry, logger, tracing, store: _store, sharding, ...rest } = options;
  const { config, relay } = splitSettings(rest);
  return new ShardedWalRelay({ shards: wal, publisher: publisherOf(transport), registry, logger, tracing, config, relay, sharding });
}

function publisherOf(transport: Pick<Transport, 'publisher'> | undefined): Transport['publisher'] {
  if (typeof transport?.publisher?.publish !== 'function') {
    throw new ZerolossError('ZL_INVALID_CONFIG', 'createRelay needs a transport: createRelay({ mode: "wal", wal, transport: kafka(…) })', {
      details: { field: 'transport' },
    });
  }
  return transport.publisher;
}

/** The WAL relay's own settings apart from those of its polling path. */
function splitSettings(rest: Record<string, unknown>): { config: WalRelayConfig; relay: RelayConfig } {
  const config: Record<string, unknown> = {};
  const relay: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(rest)) (WAL_KEYS.has(key) ? config : relay)[key] = value;
  return { config: config as WalRelayConfig, relay: relay as RelayConfig };
}

/** The WAL relay (docs/wal-relay.md); the polling settings apply to its polling path for failed rows. */
export function createWalRelay(options: WalRelayOptions & { store?: unknown }): WalRelay {
  const { mode: _mode, wal, transport, registry, logger, tracing, store: _store, ...rest } = options;
  if (typeof wal?.stream?.open !== 'function' || typeof wal?.ledger?.record !== 'function') {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      "relay mode 'wal' needs the store's slot: createRelay({ mode: 'wal', wal: postgresWal(store, { url }), transport })",
      { details: { field: 'wal' } },
    );
  }
  const publisher = publisherOf(transport);
  const { config, relay } = splitSettings(rest);
  return new WalRelay({ stream: wal.stream, ledger: wal.ledger, publisher, registry, logger, tracing, config, relay });
}
