import type { Store, Transport } from '../src/ports/backends.ts';

/** The transports a fault-suite relay process other than `zeroloss relay` sends through. */
export type RelayTransportKind = 'redis' | 'rabbitmq' | 'table-log';

/**
 * The transport of a fault-suite relay process (faults/relay-worker.ts, faults/broken-relay.ts) from its
 * `--transport`, `--url` and delivery timeout. Only the transport in use is loaded: a killed relay restarts
 * faster. The table log lives in the store's own schema.
 */
export async function relayTransport(
  kind: RelayTransportKind,
  url: string,
  store: Pick<Store, 'db' | 'schema'>,
  timeoutMs: number,
): Promise<Transport> {
  if (kind === 'table-log') return (await import('../src/adapters/table-log/table-log-transport.ts')).tableLog(store);
  if (kind === 'redis') {
    return (await import('../src/adapters/redis-streams/redis-streams-transport.ts')).redisStreams(url, {
      publisher: { commandTimeoutMs: timeoutMs },
    });
  }
  return (await import('../src/adapters/rabbitmq/rabbitmq-transport.ts')).rabbitmq(url, { publisher: { deliveryTimeoutMs: timeoutMs } });
}

/** Whether `kind` is one relayTransport builds. */
export function isRelayTransportKind(kind: string | undefined): kind is RelayTransportKind {
  return kind === 'redis' || kind === 'rabbitmq' || kind === 'table-log';
}
