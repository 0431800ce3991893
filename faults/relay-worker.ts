/**
 * One relay process of the fault suite on Redis Streams or RabbitMQ: the shipped relay (createRelay over
 * the postgres() store and the redisStreams() / rabbitmq() transport bundle, as an application wires it),
 * run until SIGTERM. `zeroloss relay` takes only --kafka, so this stands in for it with the same flags
 * (faults/processes.ts relayTuningArgs) plus the transport:
 *
 *   --transport redis|rabbitmq|table-log   --url <redis:// or amqp:// URL; for table-log, the --pg URL>
 *
 * The table log's send is an insert into the log tables of the store's own schema (tableLog(store)).
 *
 * No fault lives here: the nemesis SIGKILLs this process from outside.
 */
import { parseArgs } from 'node:util';
import { postgres } from '../src/adapters/postgres/postgres.ts';
import { createRelay } from '../src/outbox/create-relay.ts';
import { deliveryTimeoutMs, relayOptions, relaySettings } from './relay-options.ts';
import { isRelayTransportKind, relayTransport } from './relay-transport.ts';

const { values } = parseArgs({
  options: {
    ...relayOptions,
    transport: { type: 'string' },
    url: { type: 'string' },
  },
});
if (!values.pg || !values.url || !isRelayTransportKind(values.transport)) {
  throw new Error('relay-worker: --pg, --url and --transport redis|rabbitmq|table-log are required');
}

const store = postgres(values.pg, {
  schema: values.schema ?? 'zeroloss',
  notify: true,
  onError: (e) => console.error(`relay: database: ${e.message}`),
});
const transport = await relayTransport(values.transport, values.url, store, deliveryTimeoutMs(values));
const relay = createRelay({
  store,
  transport,
  ...relaySettings(values),
});
relay.on('error', (e) => console.error(`relay: ${e.message}`));
relay.on('parked', (e) => console.error(`relay: PARKED ${e.messageIds.length} message(s): ${e.messageIds.join(', ')}`));
await relay.start();
console.error(`relay ${relay.instanceId} on ${values.transport}: running`);
await new Promise<void>((resolve) => {
  process.once('SIGTERM', resolve);
  process.once('SIGINT', resolve);
});
await relay.stop();
await transport.close().catch(() => {});
await store.close().catch(() => {});
