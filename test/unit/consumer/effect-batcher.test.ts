import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type BatchInbox, EffectBatcher } from '../../../src/consumer/effect-batcher.ts';
import { LaneTicket, OutOfTurnError } from '../../../src/consumer/lane-ticket.ts';
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

  test('a failed shared transaction takes back the marks of the members it does not run again before it tells any of them', async () => {
    // The failed member would report its retry as soon as it hears, and the members behind it, sent back
    // out of turn, may wait long for a slot before theirs is heard: a crash in between found them marked.
    const { db, gates } = gatedDatabase();
    const batcher = new EffectBatcher(db, inbox, { maxMessages: 16, maxMs: 60_000 });
    const ended: Array<{ id: string; error: unknown }> = [];
    const marksBack = deferred();
    const heard: string[] = [];
    const failure = new Error('downstream is failing');
    let previous: LaneTicket | undefined;
    const run = (key: string, offset: number) => {
      const id = `${key}-${offset}`;
      let ticket: LaneTicket | undefined;
      if (key === 'a') {
        ticket = new LaneTicket(previous);
        previous = ticket;
      }
      return batcher
        .run({
          entry: entry(key, offset),
          ticket,
          apply: async () => {
            if (id === 'a-0') throw failure;
          },
          end: async (error) => {
            ended.push({ id, error });
            await marksBack.promise;
          },
        })
        .then(
          (claim) => {
            heard.push(`${id} ${claim.kind}`);
          },
          (error: unknown) => {
            heard.push(`${id} ${error === failure ? 'failed' : error instanceof OutOfTurnError ? 'out of turn' : String(error)}`);
          },
        );
    };
    // a-1 and a-2 follow a-0 into its transaction; b-3 is another key's.
    const done = [run('a', 0), run('a', 1), run('a', 2), run('b', 3)];
    await turnsUntil(() => gates.length === 1, 'the shared transaction');
    gates.shift()?.();
    await turnsUntil(() => ended.length === 3, 'the marks of the three members not run again asked back');
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      ended.map((e) => e.id),
      ['a-0', 'a-1', 'a-2'],
      "b-3 runs again alone (its mark stays: it is running); the failed member's followers are not",
    );
    assert.equal(ended[0]?.error, failure, 'the failed member ends with its own failure (its count is kept with the mark)');
    assert.ok(ended.slice(1).every((e) => e.error instanceof OutOfTurnError));
    assert.ok(!heard.some((h) => h.startsWith('a-')), 'no member of key a told before every mark is back');
    marksBack.resolve();
    await turnsUntil(() => gates.length === 1, "b-3's transaction of its own");
    gates.shift()?.();
    await Promise.all(done);
    assert.deepEqual(heard.sort(), ['a-0 failed', 'a-1 out of turn', 'a-2 out of turn', 'b-3 claimed']);
  });
});
