/**
 * TEST-ONLY deliberately broken WAL relay, for `npm run faults -- <scenario> --relay-mode wal --broken
 * wal-confirm-before-send`: it proves the checker fails when the WAL relay confirms a position to the slot
 * before the broker confirmed the rows before it. The shipped WalRelay runs over a slot stream wrapped
 * here so that every commit is confirmed to the slot the moment it is received, before the relay has
 * published it; the relay's own later confirmations change nothing (a slot never moves back). A holder
 * killed, frozen or cut off with received commits not yet sent leaves them behind the slot's position:
 * the next holder starts after them, and they are never sent (their rows stay unsent, state 0).
 *
 * Takes the flags of `zeroloss relay --mode wal` that the suite passes (faults/processes.ts); the fault
 * lives here, never in src/.
 */
import { parseArgs } from 'node:util';
import { KafkaPublisher } from '../src/adapters/kafka/kafka-publisher.ts';
import { postgres } from '../src/adapters/postgres/postgres.ts';
import { postgresWal } from '../src/adapters/postgres/wal/postgres-wal.ts';
import { createRelay } from '../src/outbox/create-relay.ts';
import type { WalStream, WalStreamSession } from '../src/ports/wal-stream.ts';
import { deliveryTimeoutMs, relayOptions, relaySettings } from './relay-options.ts';

/** The stream whose sessions confirm each commit as it arrives, before the relay has sent it. */
function confirmOnReceipt(inner: WalStream): WalStream {
  return {
    slot: inner.slot,
    async open(handler) {
      let session: WalStreamSession | undefined;
      session = await inner.open({
        ...handler,
        commit(commit) {
          handler.commit(commit);
          if (commit.endLsn !== undefined) void session?.acknowledge(commit.endLsn).catch(() => {});
        },
      });
      return session;
    },
  };
}

const { values } = parseArgs({
  allowPositionals: true,
  options: {
    ...relayOptions,
    kafka: { type: 'string' },
    mode: { type: 'string' },
    'create-slot': { type: 'boolean' },
  },
});
if (!values.pg || !values.kafka || values.mode !== 'wal')
  throw new Error('wal-relay-confirm-before-send: --pg, --kafka and --mode wal are required');

process.emitWarning('wal-relay-confirm-before-send: this relay is deliberately broken and loses messages');
const store = postgres(values.pg, { schema: values.schema ?? 'zeroloss', onError: (e) => console.error(`relay: database: ${e.message}`) });
const wal = postgresWal(store, { url: values.pg });
if (values['create-slot']) {
  const { created, handedOver } = await wal.createSlot();
  console.error(
    created ? `created slot ${wal.slot}; ${handedOver} unsent row(s) handed to the polling path` : `slot ${wal.slot} exists already`,
  );
}
const publisher = new KafkaPublisher({
  brokers: values.kafka.split(','),
  deliveryTimeoutMs: deliveryTimeoutMs(values),
});
const relay = createRelay({
  mode: 'wal',
  wal: { stream: confirmOnReceipt(wal.stream), ledger: wal.ledger },
  transport: { publisher },
  ...relaySettings(values),
});
// The lines faults/slot-holders.ts reads, as the CLI logs them.
relay.on('slot', (e) => console.error(e.state === 'streaming' ? 'reading the slot' : 'standing by: another instance holds the slot'));
relay.on('error', (e) => console.error(`relay: ${e.message}`));
await relay.start();
console.error(`relay ${relay.instanceId} (BROKEN: confirms to the slot before sending): running`);
await new Promise<void>((resolve) => {
  process.once('SIGTERM', resolve);
  process.once('SIGINT', resolve);
});
await relay.stop();
await publisher.close().catch(() => {});
await store.close().catch(() => {});
