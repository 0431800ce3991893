import type { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { pgSchema, text } from 'drizzle-orm/pg-core';
import type { drizzle as drizzlePostgresJs } from 'drizzle-orm/postgres-js';
import { fromDrizzle } from '../../../src/entry/drizzle.ts';
import type { OrmHarness } from './orm-suite.ts';

/** The same Drizzle code over either driver: the business insert through Drizzle, enqueue through fromDrizzle. */
export function drizzleHarness(
  db: ReturnType<typeof drizzlePg> | ReturnType<typeof drizzlePostgresJs>,
  schema: string,
  close: () => Promise<void>,
): OrmHarness {
  const orders = pgSchema(schema).table('orders', { id: text('id').primaryKey() });
  return {
    transaction: (body) =>
      // Both drivers' databases have the same transaction(); TypeScript cannot call a union of their overloads.
      (db as ReturnType<typeof drizzlePg>).transaction((tx) =>
        body({
          executor: fromDrizzle(tx),
          insertOrder: async (id) => {
            await tx.insert(orders).values({ id });
          },
        }),
      ),
    outsideTransaction: () => fromDrizzle(db),
    close,
  };
}
