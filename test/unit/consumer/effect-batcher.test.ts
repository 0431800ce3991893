import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type BatchInbox, EffectBatcher } from '../../../src/consumer/effect-batcher.ts';
import { LaneTicket } from '../../../src/consumer/lane-ticket.ts';
import type { Claim, InboxEntry } from '../../../src/ports/inbox-store.ts';
import type { Database, SqlExecutor } from '../../../src/ports/sql-executor.ts';

function deferred() {
  let resolve: () => void = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Resolves once `check` holds, looking after each turn of the event loop; fails after `turns`. */
async function turnsUntil(check: () => boolean, what: string, turns = 1_000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (check()) return;
    await new Promise((r) => setImmediate(r));
  }
  assert.fail(`not reached: ${what}`);
}

const entry = (key: string, offset: number): InboxEntry => ({
  groupId: 'g',
  idempotencyKey: `${key}-${offset}`,
  messageId: `${key}-${offset}`,
  topic: 't',
  partition: 0,
  offset: BigInt(offset),
});

/**
 * A database whose transactions each wait for a gate the test opens, and record which messages' effects
 * they ran: what the batcher grouped is then visible, whatever the timing.
 */
function gatedDatabase() {
  const transactions: string[][] = [];
  const gates: Array<() => void> = [];
  const db: Database = {
    query: async () => ({ rows: [] }),
    transaction: async <T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> => {
      const applied: string[] = [];
      transactions.push(applied);
      const gate = deferred();
      gates.push(gate.resolve);
      await gate.promise;
      return fn({
        query: async (_sql: string, params?: unknown[]) => {
          applied.push(String(params?.[0]));
          return { rows: [] };
        },
      });
    },
    listen: async () => async () => {},
    close: async () => {},
  };
  return { db, transactions, gates };
}

const inbox: BatchInbox = {
  claimMany: async (_tx, entries) => entries.map((): Claim => ({ kind: 'claimed' })),
  unclaimMany: async () => {},
};

describe('EffectBatcher', () => {
  test('messages that become ready while every transaction runs go together into the next one, key order kept', async () => {
    const { db, transactions, gates } = gatedDatabase();
    const sizes: number[] = [];
    const batcher = new EffectBatcher(db, inbox, {
      maxMessages: 16,
      maxMs: 60_000,
      maxTransactions: 1,
      onTransaction: (n) => sizes.push(n),
    });
    const run = (key: string, offset: number, ticket?: LaneTicket) =>
      batcher.run({
        entry: entry(key, offset),
        ticket,
        apply: async (tx, claim) => {
          if (claim.kind === 'claimed') await tx.query('effect', [`${key}-${offset}`]);
        },
      });
    const done: Array<Promise<Claim>> = [run('a', 0)];
    await turnsUntil(() => transactions.length === 1, 'the first transaction to start');
    // Three waves of readiness, each in a turn of its own, while the one transaction allowed runs: two keys,
    // and a hot key whose three messages follow one another (b1 behind b0, b2 behind b1).
    let previous: LaneTicket | undefined;
    for (const wave of [['b', 'c'], ['b', 'd'], ['b']]) {
      for (const key of wave) {
        let ticket: LaneTicket | undefined;
        if (key === 'b') {
          ticket = new LaneTicket(previous);
          previous = ticket;
        }
        done.push(run(key, done.length, ticket));
      }
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(transactions.length, 1, 'no transaction beyond maxTransactions started');
    gates.shift()?.();
    await turnsUntil(() => transactions.length === 2, 'the next transaction to start');
    gates.shift()?.();
    const claims = await Promise.all(done);
    assert.ok(claims.every((c) => c.kind === 'claimed'));
    assert.deepEqual(sizes, [1, 5], 'the five that waited shared one transaction');
    assert.deepEqual(transactions[1], ['b-1', 'b-3', 'b-5', 'c-2', 'd-4'], "a key's effects together, in key order");
  });

  test('without a limit on transactions, each wave of readiness makes its own', async () => {
    const { db, transactions, gates } = gatedDatabase();
    const sizes: number[] = [];
    const batcher = new EffectBatcher(db, inbox, { maxMessages: 16, maxMs: 60_000, onTransaction: (n) => sizes.push(n) });
    const run = (key: string, offset: number) =>
      batcher.run({ entry: entry(key, offset), apply: async (tx) => void (await tx.query('effect', [`${key}-${offset}`])) });
    const done = [run('a', 0)];
    await turnsUntil(() => transactions.length === 1, 'the first transaction to start');
    done.push(run('b', 1), run('c', 2));
    await turnsUntil(() => transactions.length === 2, 'the second wave to start its own transaction');
    for (const open of gates.splice(0)) open();
    await Promise.all(done);
    assert.deepEqual(sizes.sort(), [1, 2]);
  });
});
