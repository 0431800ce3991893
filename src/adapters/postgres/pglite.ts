import type { PGlite } from '@electric-sql/pglite';
import { ZerolossError } from '../../core/errors.ts';
import { pgliteDatabase } from './pglite-database.ts';
import { pglite as driver } from './pglite-driver.ts';
import { type PostgresStore, type PostgresStoreOptions, postgresStore } from './postgres-store.ts';

export interface PgliteStore extends PostgresStore {
  readonly kind: 'pglite';
  /** The PGlite instance: the application's own tables and transactions live in it too. */
  readonly pglite: PGlite;
}

/**
 * zeroloss embedded: Postgres compiled to WebAssembly in this process (PGlite), file-backed in `dir`, or in
 * memory without one. Pass an existing PGlite to share it with the application; a PGlite made here is
 * closed by `close`. One connection: transactions run one at a time.
 */
export function pglite(dirOrInstance?: string | PGlite, options: Omit<PostgresStoreOptions, 'notify'> = {}): PgliteStore {
  let instance: PGlite;
  let own = false;
  if (dirOrInstance === undefined || typeof dirOrInstance === 'string') {
    instance = new driver.PGlite(dirOrInstance);
    own = true;
  } else if (typeof (dirOrInstance as PGlite | null)?.query === 'function' && typeof (dirOrInstance as PGlite).transaction === 'function') {
    instance = dirOrInstance;
  } else {
    throw new ZerolossError('ZL_INVALID_CONFIG', "pglite needs a directory, nothing (in memory) or a PGlite instance: pglite('./data')", {
      details: { field: 'dir' },
    });
  }
  // PGlite delivers NOTIFY in-process for free, so relays wake at commit without the cost it has on a server.
  const store = postgresStore(pgliteDatabase(instance, { closeOnClose: own }), { ...options, notify: true, kind: 'pglite' });
  return Object.assign(store, { kind: 'pglite' as const, pglite: instance });
}
