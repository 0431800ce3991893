/**
 * TEST-ONLY deliberately broken relay process, taking the flags of `zeroloss relay` plus `--fault`:
 * `ack-before-send` (default) for `npm run faults -- <scenario> --broken relay-ack-before-send`, and
 * `claim-without-key-hold` (faults/claim-without-key-hold.ts) for `--broken claim-without-key-hold`.
 *
 * relay-ack-before-send proves the checker fails when a relay commits progress before the effect. The shipped Relay runs over
 * an outbox store wrapped here so that every claimed row is recorded as sent *before* it is handed to the
 * broker; the broker's answer then changes nothing (recording a row sent or failed skips rows already
 * sent). A send that fails, or a relay killed mid-send, loses committed messages, and a key's next row
 * can be claimed while its earlier one is still in flight, so order breaks too.
 *
 * Takes the flags of `zeroloss relay` that the suite passes (fastRelayArgs), and `--config-file <f>
 * --only-sources` as `zeroloss relay` does: then the sources it breaks are the state-column sources the
 * settings file declares (built by the CLI's own code), not the outbox table. On Redis Streams, RabbitMQ
 * and the table log it takes faults/relay-worker.ts's `--transport <kind> --url <url>` instead of
 * `--kafka` and sends through that transport's publisher (ack-before-send only). The fault lives here,
 * never in src/.
 */
import { parseArgs } from 'node:util';
import { KafkaPublisher } from '../src/adapters/kafka/kafka-publisher.ts';
import { pgDatabase } from '../src/adapters/postgres/pg-database.ts';
import { PostgresOutboxStore } from '../src/adapters/postgres/postgres-outbox-store.ts';
import { postgres } from '../src/adapters/postgres/postgres.ts';
import { configuredSources } from '../src/cli/config-sources.ts';
import { Relay } from '../src/outbox/relay.ts';
import type { RelaySource } from '../src/ports/outbox-store.ts';
import { claimWithoutKeyHold } from './claim-without-key-hold.ts';
import { deliveryTimeoutMs, relayOptions, relaySettings } from './relay-options.ts';
import { isRelayTransportKind, relayTransport } from './relay-transport.ts';

/** The source whose claim marks what it claimed as sent before the relay sends it. */
function ackBeforeSend(inner: RelaySource): RelaySource {
  return {
    name: inner.name,
    wakeChannel: inner.wakeChannel,
    async claim(owner, limit, leaseMs) {
      const rows = await inner.claim(owner, limit, leaseMs);
      if (rows.length > 0) {
        await inner.markSent(
          owner,
          rows.map((r) => ({ ref: r.ref })),
        );
      }
      return rows;
    },
    markSent: (owner, sent) => inner.markSent(owner, sent),
    markFailed: (owner, failed) => inner.markFailed(owner, failed),
    backlog: () => inner.backlog(),
    anyDue: inner.anyDue ? () => inner.anyDue?.() ?? Promise.resolve({ due: false }) : undefined,
  };
}

const { values } = parseArgs({
  allowPositionals: true,
  options: {
    ...relayOptions,
    kafka: { type: 'string' },
    transport: { type: 'string' },
    url: { type: 'string' },
    verbose: { type: 'boolean' },
    'config-file': { type: 'string' },
    'only-sources': { type: 'boolean' },
    fault: { type: 'string' },
  },
});
const fault = values.fault ?? 'ack-before-send';
if (fault !== 'ack-before-send' && fault !== 'claim-without-key-hold') throw new Error(`broken relay: unknown --fault ${fault}`);
const onKafka = values.transport === undefined;
if (!onKafka && !isRelayTransportKind(values.transport)) throw new Error(`broken relay: unknown --transport ${values.transport}`);
if (!values.pg || (onKafka ? !values.kafka : !values.url))
  throw new Error(`broken relay (${fault}): --pg and --kafka (or --transport and --url) are required`);
if (fault === 'claim-without-key-hold' && !onKafka) throw new Error('claim-without-key-hold: Kafka only');
if (fault === 'claim-without-key-hold' && values['only-sources'])
  throw new Error('claim-without-key-hold breaks the outbox claim: not with --only-sources');

process.emitWarning(
  `broken relay (${fault}): this relay is deliberately broken: it ${fault === 'ack-before-send' ? 'loses messages' : 'breaks key order'}`,
);
const db = pgDatabase({ connectionString: values.pg, onError: (e) => console.error(`relay: database: ${e.message}`) });
const schema = values.schema ?? 'zeroloss';
const timeoutMs = deliveryTimeoutMs(values);
// Kafka as `zeroloss relay` sends; the other transports as faults/relay-worker.ts builds them.
const kafka = () => {
  const publisher = new KafkaPublisher({ brokers: (values.kafka ?? '').split(','), deliveryTimeoutMs: timeoutMs });
  return { publisher, close: () => publisher.close() };
};
const transport = isRelayTransportKind(values.transport)
  ? await relayTransport(values.transport, values.url ?? '', { db, schema }, timeoutMs)
  : kafka();
const publisher = transport.publisher;
// The declared sources are built on a store bundle of their own, as `zeroloss relay` builds them.
const store = values['config-file'] ? postgres(values.pg, { schema }) : undefined;
const declared = store ? await configuredSources(store, values['config-file']) : [];
const outbox = values['only-sources'] ? [] : [new PostgresOutboxStore(db, { schema, notify: true })];
const relay = new Relay({
  sources:
    fault === 'ack-before-send' ? [...outbox, ...declared].map(ackBeforeSend) : outbox.map((o) => claimWithoutKeyHold(o, db, schema)),
  publisher,
  db,
  config: relaySettings(values),
});
relay.on('error', (e) => console.error(`relay: ${e.message}`));
await relay.start();
console.error(`relay ${relay.instanceId} (BROKEN: ${fault}): running`);
await new Promise<void>((resolve) => {
  process.once('SIGTERM', resolve);
  process.once('SIGINT', resolve);
});
await relay.stop();
await transport.close().catch(() => {});
await db.close().catch(() => {});
await store?.close().catch(() => {});
