import { describe } from 'node:test';
import { databaseTests } from './store-conformance-database.ts';
import { deadLetterTests } from './store-conformance-dead-letters.ts';
import { inboxTests } from './store-conformance-inbox.ts';
import { outboxTests } from './store-conformance-outbox.ts';
import { type OpenStore, runner, type StoreConformanceOptions } from './store-harness.ts';

export type { OpenStore, StoreConformanceOptions, StoreUnderTest } from './store-harness.ts';

/**
 * The behaviour every Store bundle (Postgres, PGlite) must show through its ports: the database and its
 * transactions, migrate, the outbox writer and relay source, the inbox with its offsets and start log, and
 * dead letters. Each test gets a store on a fresh schema, so the suite runs beside others on one server.
 * Tests wait on observed state (a lease or a retry delay running out), never on time.
 */
export function storeConformance(name: string, open: OpenStore, options: StoreConformanceOptions = {}): void {
  describe(`store conformance: ${name}`, { concurrency: options.concurrency ?? 1 }, () => {
    const run = runner(open, options);
    databaseTests(run);
    outboxTests(run);
    inboxTests(run);
    deadLetterTests(run);
  });
}
