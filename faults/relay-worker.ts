/**
 * One relay process of the fault suite on Redis Streams or RabbitMQ: the shipped relay (createRelay over
 * the postgres() store and the redisStreams() / rabbitmq() transport bundle, as an application wires it),
 * run until SIGTERM. `zeroloss relay` takes only --kafka, so this stands in for it with the same flags
 * (faults/processes.ts relayTuningArgs) plus the transport:
 *
 *   --transport redis|rabbitmq   --url <redis:// or amqp:// URL>
 *
 * No fault lives here: the nemesis SIGKILLs this process from outside.
 */
import { parseArgs } from 'node:util';
import { postgres } from '../src/adapters/postgres/postgres.ts';
import { createRelay } from '../src/outbox/create-relay.ts';

const { values } = parseArgs({
  options: {
    pg: { type: 'string' },
    schema: { type: 'string' },
    transport: { type: 'string' },
    url: { type: 'string' },
    'lease-ms': { type: 'string' },
    'delivery-timeout-ms': { type: 'string' },
    'backoff-base-ms': { type: 'string' },
    'backoff-max-ms': { type: 'string' },
    'idle-interval-ms': { type: 'string' },
    'batch-size': { type: 'string' },
  },
});
const number = (value: string | undefined, fallback: number): number => (value === undefined ? fallback : Number(value));
if (!values.pg || !values.url || (values.transport !== 'redis' && values.transport !== 'rabbitmq')) {
  throw new Error('relay-worker: --pg, --url and --transport redis|rabbitmq are required');
}

const deliveryTimeoutMs = number(values['delivery-timeout-ms'], 30_000);
const store = postgres(values.pg, {
  schema: values.schema ?? 'zeroloss',
  notify: true,
  onError: (e) => console.error(`relay: database: ${e.message}`),
});
// Only the transport in use is loaded: a killed relay restarts faster.
const transport =
  values.transport === 'redis'
    ? (await import('../src/adapters/redis-streams/redis-streams-transport.ts')).redisStreams(values.url, {
        publisher: { commandTimeoutMs: deliveryTimeoutMs },
      })
    : (await import('../src/adapters/rabbitmq/rabbitmq-transport.ts')).rabbitmq(values.url, { publisher: { deliveryTimeoutMs } });
const relay = createRelay({
  store,
  transport,
  batchSize: number(values['batch-size'], 500),
  leaseMs: number(values['lease-ms'], 60_000),
  backoff: { baseMs: number(values['backoff-base-ms'], 1_000), maxMs: number(values['backoff-max-ms'], 300_000), jitter: 0.5 },
  idleIntervalMs: number(values['idle-interval-ms'], 60_000),
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
