import { PostgresOutboxStore } from '../../src/adapters/postgres/postgres-outbox-store.ts';
import { createOutbox, type Outbox, type OutboxConfig } from '../../src/outbox/outbox.ts';

/**
 * An outbox writing to `schema` for tests that hold their own transactions (a pg client, a PGlite tx): the
 * writer needs no connection of its own, so tests need not build a whole store bundle.
 */
export function testOutbox(options: OutboxConfig & { schema?: string; notify?: boolean; preparedStatements?: boolean } = {}): Outbox {
  const { schema, notify, preparedStatements, ...config } = options;
  return createOutbox({ store: { outbox: new PostgresOutboxStore(undefined, { schema, notify, preparedStatements }) }, ...config });
}
