/**
 * The host process of the `embedded-host-kill` scenario (faults/embedded-host-kill.ts): zeroloss embedded as
 * an application runs it (`zeroloss demo`, src/entry/pglite.ts). One file-backed PGlite holds the business
 * tables, the outbox, the inbox and the table log; the relay and the inbox consumer run in this process.
 * The harness SIGKILLs it without warning and starts it again on the same directory.
 *
 *   ZL_EH_DIR     the PGlite data directory (shared by every life)
 *   ZL_EH_SCHEMA  the schema of zeroloss's tables and the business tables
 *   ZL_EH_TOPIC   the topic; ZL_EH_KEYS the keys the workload spreads its messages over
 *   ZL_EH_LIFE    this process's number (its client id; the random stream of its workload)
 *   ZL_EH_WRITE   1: commit business transactions until killed; 0: only relay and consume (the last life)
 *   ZL_EH_RATE    committed messages per second the writers aim at
 *   ZL_EH_BREAK   test-only broken build, `effect-outside-transaction`; empty normally
 *
 * Reports over IPC: `ready` once the directory is open and the relay and consumer run; each transaction's
 * message ids *after* its commit (or its rollback) returned; every 250 ms the outstanding counts.
 * `{ kind: 'stop' }` from the harness stops it cleanly (the drain life).
 */
import { pglite } from '../src/adapters/postgres/pglite.ts';
import { tableLog } from '../src/adapters/table-log/table-log-transport.ts';
import { createConsumer } from '../src/entry/create-consumer.ts';
import { createOutbox } from '../src/outbox/outbox.ts';
import { createRelay } from '../src/outbox/create-relay.ts';
import type { SqlExecutor } from '../src/ports/sql-executor.ts';
import { prng } from '../test/helpers/prng.ts';
import { outstanding } from './checker.ts';
import { effectAfterInboxCommit } from './effect-after-inbox-commit.ts';
import { applyFxEffect, FX_TYPE, type FxPayload } from './workload.ts';

export type HostReport =
  | { kind: 'ready'; openMs: number }
  | { kind: 'committed'; ids: string[] }
  | { kind: 'rolled-back'; ids: string[] }
  | { kind: 'progress'; pending: number; unsent: number }
  | { kind: 'error'; message: string };

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`embedded-host: ${name} is not set`);
  return value;
};
const dir = env('ZL_EH_DIR');
const schema = env('ZL_EH_SCHEMA');
const topic = env('ZL_EH_TOPIC');
const keys = Number(env('ZL_EH_KEYS'));
const life = Number(env('ZL_EH_LIFE'));
const writing = env('ZL_EH_WRITE') === '1';
const rate = Number(env('ZL_EH_RATE'));
/**
 * TEST-ONLY broken build, read once here: the effect committed in a transaction of its own after the
 * handler's (inbox) transaction, not in it (faults/effect-after-inbox-commit.ts). Never set outside the
 * fault suite's own checks.
 */
const broken = process.env.ZL_EH_BREAK === 'effect-outside-transaction';

const report = (message: HostReport) => process.send?.(message);
let errorsReported = 0;
const reportError = (error: Error) => {
  if (errorsReported++ < 20) report({ kind: 'error', message: `life ${life}: ${error.message}` });
};

const opening = Date.now();
const store = pglite(dir, { schema });
await store.migrate();
// The demo's table-log timings (src/demo/demo-role.ts): a killed life's group session and relay claims
// expire in 2 s, so the next life takes its partitions and rows over within seconds.
const transport = tableLog(store, {
  subscriber: {
    clientId: `host-${life}`,
    heartbeatIntervalMs: 250,
    sessionTimeoutMs: 2_000,
    pollIntervalMs: 250,
    rebalanceTimeoutMs: 5_000,
  },
});
const relay = createRelay({
  store,
  transport,
  instanceId: `host-${life}`,
  batchSize: 200,
  leaseMs: 2_000,
  backoff: { baseMs: 100, maxMs: 1_000, jitter: 0.5 },
  idleIntervalMs: 1_000,
});
relay.on('error', reportError);
const consumer = createConsumer({
  store,
  transport,
  groupId: 'fx-embedded',
  topics: [topic],
  concurrency: 16,
  commitIntervalMs: 200,
  revokeTimeoutMs: 3_000,
  stopTimeoutMs: 5_000,
  lagIntervalMs: 0,
  // The kills are the host's, not the messages': one in flight at several kills in a row is not poison.
  poison: { maxStarts: 50 },
  inbox: { cleanupIntervalMs: 0 },
  tracing: false,
});
consumer.on('error', reportError);

function applyEffect(tx: SqlExecutor, m: { id: string; key: string; seq: number }): Promise<void> {
  return applyFxEffect(tx, schema, m, `host-${life}`);
}

const deferred = broken ? effectAfterInboxCommit(store.db, applyEffect) : undefined;
consumer.handle<FxPayload>(FX_TYPE, async (m, ctx) => {
  if (deferred) deferred(m);
  else await applyEffect(ctx.tx, m);
});

await relay.start();
await consumer.start();
report({ kind: 'ready', openMs: Date.now() - opening });

// The harness cannot open the directory while this process has it: the progress it waits on comes from here.
const progress = setInterval(() => {
  outstanding(store.db as never, schema).then(
    (o) => report({ kind: 'progress', ...o }),
    (e: Error) => reportError(e),
  );
}, 250);

let stopping = false;
process.on('message', async (m: { kind?: string }) => {
  if (m?.kind !== 'stop' || stopping) return;
  stopping = true;
  clearInterval(progress);
  await consumer.stop().catch(reportError);
  await relay.stop().catch(reportError);
  await transport.close().catch(reportError);
  await store.close().catch(reportError);
  process.exit(0);
});
// The harness going away must not leave a host behind.
process.on('disconnect', () => process.exit(1));

/**
 * One writer: transactions of 1-3 orders of one key, each order row with its message; 5% rolled back on
 * purpose after enqueueing. Ids are reported only once the commit (or rollback) returned.
 */
async function writer(n: number, pace: { start: number; written: number }): Promise<void> {
  const outbox = createOutbox({ store, producerId: 'fx-embedded' });
  const random = prng(life * 1_000 + n);
  for (let tx = 0; !stopping; tx++) {
    // PGlite answers in microtasks: a loop of transactions that never waits on a timer or I/O never lets
    // the event loop run, and the relay's and consumer's timers (and the progress report) never fire. An
    // application's writes come from I/O; here each transaction yields once, and the writers are paced so
    // the relay and consumer get the connection too and a kill can land on any of the three.
    const due = pace.start + (pace.written / rate) * 1_000;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now())));
    const key = `k${Math.floor(random() * keys)}`;
    const count = 1 + Math.floor(random() * 3);
    const rollback = random() < 0.05;
    const ids: string[] = [];
    try {
      await store.transaction(async (t) => {
        for (let i = 0; i < count; i++) {
          const envelope = await outbox.enqueue<FxPayload>(t, { topic, key, type: FX_TYPE, payload: { orderId: life * 10_000_000 + tx } });
          ids.push(envelope.id);
          await t.query(`insert into "${schema}".fx_order (message_id, msg_key) values ($1, $2)`, [envelope.id, key]);
        }
        if (rollback) throw new RolledBackOnPurpose();
      });
      pace.written += ids.length;
      report({ kind: 'committed', ids });
    } catch (error) {
      // In-process, a transaction that did not return from COMMIT did not commit: no unknown outcome here.
      if (rollback) report({ kind: 'rolled-back', ids });
      else reportError(error as Error);
    }
  }
}
class RolledBackOnPurpose extends Error {}

if (writing) {
  const pace = { start: Date.now(), written: 0 };
  await Promise.all([writer(1, pace), writer(2, pace)]);
}
