/**
 * Entry point of one demo instance (relay or consumer). Run as a worker thread over the main thread's
 * PGlite (embedded demo), or as a child process over Postgres (`--pg`). Either way the demo kills it
 * without warning (`Worker.terminate()` / SIGKILL) and starts a fresh one; only at the very end does it
 * ask for a graceful stop.
 */
import { isMainThread, type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { postgres } from '../adapters/postgres/postgres.ts';
import { postgresStore } from '../adapters/postgres/postgres-store.ts';
import type { PostgresStore as Store } from '../adapters/postgres/postgres-store.ts';
import { bridgedDatabase } from './bridged-database.ts';
import { type RoleConfig, type RoleEvent, startRole } from './demo-role.ts';

let config: RoleConfig;
let store: Store;
let report: (event: RoleEvent) => void;
let onStop: (stop: () => void) => void;

if (isMainThread) {
  config = JSON.parse(process.env.ZL_DEMO_ROLE ?? 'null') as RoleConfig;
  const url = process.env.ZL_DEMO_PG_URL;
  if (!config || !url) throw new Error('demo-worker: ZL_DEMO_ROLE and ZL_DEMO_PG_URL must be set');
  store = postgres(url, {
    schema: config.ctx.schema,
    max: 10,
    onError: (e) => report({ kind: 'error', message: `${config.name}: database: ${e.message}` }),
  });
  report = (event) => process.send?.(event);
  onStop = (stop) => {
    process.on('message', (m) => m === 'stop' && stop());
    process.once('SIGTERM', stop);
  };
} else {
  const data = workerData as { config: RoleConfig; port: MessagePort };
  config = data.config;
  // The main thread's PGlite over the bridge: the store a `pglite()` bundle would make, notify on as it has it.
  store = postgresStore(bridgedDatabase(data.port), { schema: config.ctx.schema, notify: true, kind: 'pglite' });
  report = (event) => parentPort?.postMessage(event);
  onStop = (stop) => parentPort?.on('message', (m) => m === 'stop' && stop());
}

const role = await startRole(config, store, report);
report({ kind: 'ready' });
let stopping = false;
onStop(() => {
  if (stopping) return;
  stopping = true;
  role
    .stop()
    .catch((error: unknown) => report({ kind: 'error', message: `${config.name}: stop: ${(error as Error).message}` }))
    .finally(() => report({ kind: 'stopped' }));
});
