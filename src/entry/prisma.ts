/**
 * `zeroloss/prisma`: enqueue inside a Prisma 7 interactive transaction (with `@prisma/adapter-pg`; Prisma is
 * the application's own: zeroloss imports nothing from it).
 *
 *   await prisma.$transaction(async (tx) => { await tx.order.create(…); await outbox.enqueue(fromPrisma(tx), message); });
 */
export { fromPrisma, type PrismaRawExecutor } from '../adapters/orm/from-prisma.ts';
