import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PrismaPg } from '@prisma/adapter-pg';
import { fromPrisma } from '../../../src/entry/prisma.ts';
import { ormSuite } from './orm-suite.ts';
import { generatePrismaClient } from './prisma-client.ts';

interface OrderClient {
  $transaction<T>(fn: (tx: OrderClient) => Promise<T>, options?: { timeout?: number; maxWait?: number }): Promise<T>;
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): Promise<T>;
  $disconnect(): Promise<void>;
  order: { create(args: { data: { id: string } }): Promise<unknown> };
}

ormSuite(
  'prisma',
  async ({ schema, url }) => {
    const generated = generatePrismaClient();
    const { PrismaClient } = (await import(pathToFileURL(path.join(generated.dir, 'generated/client.ts')).href)) as {
      PrismaClient: new (options: { adapter: PrismaPg }) => OrderClient;
    };
    const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url, max: 2 }, { schema }) });
    return {
      transaction: (body) =>
        prisma.$transaction(
          (tx) =>
            body({
              executor: fromPrisma(tx),
              insertOrder: async (id) => {
                await tx.order.create({ data: { id } });
              },
            }),
          { timeout: 20_000, maxWait: 10_000 },
        ),
      outsideTransaction: () => fromPrisma(prisma),
      close: async () => {
        await prisma.$disconnect();
        generated.remove();
      },
    };
    // The store notifies: the enqueue statement's notify column is text, since Prisma refuses to decode
    // pg_notify()'s void ("Failed to deserialize column of type 'void'") after the row is written.
  },
  { notify: true },
);
