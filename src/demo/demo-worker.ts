/**
 * Entry point of one demo instance (relay or consumer). Run as a worker thread over the main thread's
 * PGlite (embedded demo), or as a child process over Postgres (`--pg`). Either way the demo kills it
 * without warning (`Worker.terminate()` / SIGKILL) and starts a fresh one; only at the very end does it
 * ask for a graceful stop.
 */
import { isMainThread, type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { pgDatabase } from '../adapters/postgres/pg-database.ts';
import type { Database } from '../ports/sql-executor.ts';
import { bridgedDatabase } from './bridged-database.ts';
import { type RoleConfig, type RoleEvent, startRole } from './demo-role.ts';

let config: RoleConfig;
let db: Database;
let report: (event: RoleEvent) => void;
let onStop: (stop: () => void) => void;

if (isMainThread) {
  config = JSON.parse(process.env.ZL_DEMO_ROLE ?? 'null') as RoleConfig;
  const url = process.env.ZL_DEMO_PG_URL;
  if (!config || !url) throw new Error('demo-worker: ZL_DEMO_ROLE and ZL_DEMO_PG_URL must be set');
  db = pgDatabase({
    connectionString: url,
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
  db = bridgedDatabase(data.port);
  report = (event) => parentPort?.postMessage(event);
  onStop = (stop) => parentPort?.on('message', (m) => m === 'stop' && stop());
}

const role = await startRole(config, db, report);
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
