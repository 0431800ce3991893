import { turnBatch } from '../core/turn-batch.ts';
import type { Claim, InboxEntry } from '../ports/inbox-store.ts';
import type { Database, SqlExecutor } from '../ports/sql-executor.ts';
import { type LaneTicket, OutOfTurnError } from './lane-ticket.ts';

export interface EffectBatcherOptions {
  /** Most messages whose effects share one database transaction; 1 turns batching off. */
  maxMessages: number;
  /**
   * Once a shared transaction has run this long, its members not yet started run in transactions of their
   * own, one per key (a key's members stay together, in order).
   */
  maxMs: number;
  /**
   * Most shared transactions running at once (undefined: no limit). Messages that become ready while that
   * many run wait in the batcher, and the next free transaction takes them together (up to `maxMessages`).
   * Without it, each wave of readiness (the members of one commit, freed at once, taking their start marks
   * together) made a transaction of its own, and waves stayed as small as they began. A member's own
   * reruns (after a failed shared transaction, or past the time budget) are not held back by it.
   */
  maxTransactions?: number;
  /** Called with the number of messages of every effect transaction run (for metrics). */
  onTransaction?: (messages: number) => void;
}

/** The inbox as the batcher uses it: rows recorded, or taken back, inside the shared transaction. */
export interface BatchInbox {
  /** Records the inbox rows of `entries`; 'claimed' for each entry whose key was new (the effect may be applied). */
  claimMany(tx: SqlExecutor, entries: InboxEntry[]): Promise<Claim[]>;
  /** Deletes rows this transaction claimed but whose effect it will not apply. */
  unclaimMany(tx: SqlExecutor, entries: InboxEntry[]): Promise<void>;
}

/** One message's effect: after its inbox claim, `apply` runs the handler (claimed) or nothing (a duplicate or conflict). */
export interface EffectWork {
  entry: InboxEntry;
  apply: (tx: SqlExecutor, claim: Claim) => Promise<void>;
  /** The record's place in its key's line; its effect then never commits before its predecessor's. */
  ticket?: LaneTicket;
  /**
   * Takes back the start mark of the attempt this work belongs to (poison-guard.ts), which is about to end
   * with `error`; never rejects. Called, and awaited, before the work is rejected.
   */
  end?: (error: unknown) => Promise<void>;
}

interface Member extends EffectWork {
  resolve: (claim: Claim) => void;
  reject: (error: unknown) => void;
}

/**
 * Failures that say the shared transaction, not the member that saw them, is at fault: a statement after an
 * earlier member's swallowed error (the store reports ZL_TRANSACTION_ROLLED_BACK), and conflicts with
 * concurrent transactions that only exist because members were grouped (ZL_STORE_CONFLICT: deadlock,
 * serialization failure, lock not available).
 */
const BATCH_CAUSED = new Set(['ZL_TRANSACTION_ROLLED_BACK', 'ZL_STORE_CONFLICT']);

function batchCaused(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && BATCH_CAUSED.has(code);
}

/**
 * Group commit for effect transactions. Messages that become ready in the same turn of the event loop share
 * one database transaction: one statement records all their inbox rows, then each handler runs, then one
 * commit. Ready messages beyond `maxMessages` form further transactions that run in parallel (up to
 * `maxTransactions`; the rest wait for the next free one), so both the commit count and the round trips per
 * message drop without serialising everything on one connection.
 *
 * Consecutive messages of one key (a hot key) join too: a message whose lane predecessor is in the same
 * flush follows it into its transaction, right after it, so handlers run in key order. A message whose
 * predecessor is neither settled nor in the flush is out of turn (OutOfTurnError): nothing of it runs, and
 * it comes back once its predecessor is applied. After a failed shared transaction the same holds: a
 * member reruns alone only if its predecessor is settled, so a key goes on one at a time from the failed
 * message, in order.
 *
 * Each message keeps the guarantees of a transaction of its own: it is reported applied only after the
 * shared commit, and if the shared transaction fails nothing of it committed and every member that is not
 * itself the cause runs again alone, so one member's failure is never charged to another. A handler may
 * therefore run a second time after a rollback; the inbox makes that harmless for database effects.
 */
export class EffectBatcher {
  readonly #db: Database;
  readonly #inbox: BatchInbox;
  readonly #options: EffectBatcherOptions;
  readonly #enqueue = turnBatch<Member>((ready) => this.#flush(ready));
  /** Submitted members no transaction has taken yet, in the order they came (a key's in key order). */
  #queue: Member[] = [];
  /** Shared transactions running (the members' own reruns after a failure are not counted). */
  #running = 0;

  constructor(db: Database, inbox: BatchInbox, options: EffectBatcherOptions) {
    this.#db = db;
    this.#inbox = inbox;
    this.#options = options;
  }

  /**
   * Resolves after the commit with the inbox's answer: 'claimed' when the effect was applied. Marks the
   * work's ticket 'submitted' once it is queued, not before: a follower of its key waiting for that goes in
   * at once, synchronously, and must be queued behind it to share its flush.
   */
  run(work: EffectWork): Promise<Claim> {
    if (this.#options.maxMessages <= 1) return this.#alone(work).catch((error: unknown) => ended(work, error));
    const claim = new Promise<Claim>((resolve, reject) => {
      this.#enqueue({ ...work, resolve, reject });
    });
    work.ticket?.set('submitted');
    return claim;
  }

  #flush(ready: Member[]): void {
    this.#queue.push(...ready);
    this.#dispatch();
  }

  /**
   * Starts transactions from the queue while fewer than `maxTransactions` run. A key's queued messages form
   * one chain, in key order (a successor is queued after its predecessor), and a chain is never split
   * between transactions. While every transaction runs, the queue fills: the next one takes the messages of
   * several waves of readiness at once, so a busy consumer commits less often per message.
   */
  #dispatch(): void {
    const free = (this.#options.maxTransactions ?? Number.POSITIVE_INFINITY) - this.#running;
    if (free <= 0 || this.#queue.length === 0) return;
    const chains: Member[][] = [];
    const chainOf = new Map<LaneTicket, Member[]>();
    const outOfTurn: Refusal[] = [];
    let members = 0;
    for (const m of this.#queue) {
      const previous = m.ticket?.previous;
      let chain = previous ? chainOf.get(previous) : undefined;
      if (previous && !chain) {
        outOfTurn.push([m, new OutOfTurnError()]);
        continue;
      }
      if (chain) chain.push(m);
      else {
        chain = [m];
        chains.push(chain);
      }
      if (m.ticket) chainOf.set(m.ticket, chain);
      members++;
    }
    this.#queue = [];
    if (outOfTurn.length > 0) void refuse(outOfTurn);
    // Even shares, so 20 ready with a limit of 16 make two transactions of 10, not 16 and 4.
    const count = Math.min(free, Math.ceil(members / this.#options.maxMessages));
    const size = Math.ceil(members / Math.ceil(members / this.#options.maxMessages));
    const batches: Member[][] = [];
    let batch: Member[] = [];
    for (const chain of chains) {
      if (batch.length > 0 && batch.length + chain.length > size) {
        batches.push(batch);
        batch = [];
      }
      if (batches.length >= count) this.#queue.push(...chain);
      else batch.push(...chain);
    }
    if (batch.length > 0) batches.push(batch);
    for (const taken of batches) {
      for (const m of taken) m.ticket?.set('running');
      this.#running++;
      void this.#together(taken).finally(() => {
        this.#running--;
        // After the flushes already due: a key's next message queued behind one still waiting here (turn-batch.ts
        // hands it over on the next turn) must go with it, not find it running and be sent back out of turn.
        setImmediate(() => this.#dispatch());
      });
    }
  }

  #alone(work: EffectWork): Promise<Claim> {
    work.ticket?.set('running');
    this.#options.onTransaction?.(1);
    return this.#db.transaction(async (tx) => {
      const [claim] = await this.#inbox.claimMany(tx, [work.entry]);
      if (!claim) throw new Error('the inbox answered no claim for its one entry');
      await work.apply(tx, claim);
      return claim;
    });
  }

  async #together(batch: Member[]): Promise<void> {
    if (batch.length === 1) {
      const [m] = batch as [Member];
      await this.#alone(m).then(m.resolve, (error: unknown) => refuse([[m, error]]));
      return;
    }
    let claims: Claim[] = [];
    let started = 0;
    let failedAt = -1;
    let failure: unknown;
    try {
      await this.#db.transaction(async (tx) => {
        // The budget runs from the transaction's start: time spent waiting for a pooled connection is not
        // the members' doing, and counting it would split batches exactly when connections are scarce.
        const t0 = performance.now();
        claims = await this.#inbox.claimMany(
          tx,
          batch.map((m) => m.entry),
        );
        for (const [i, member] of batch.entries()) {
          // Past the budget, the rest go to transactions of their own (in parallel) instead of queueing here;
          // the inbox rows claimed for them are taken back first, or their own claim would find them.
          if (started > 0 && performance.now() - t0 > this.#options.maxMs) {
            const rest = batch.slice(i).filter((_, j) => claims[i + j]?.kind === 'claimed');
            if (rest.length > 0)
              await this.#inbox.unclaimMany(
                tx,
                rest.map((m) => m.entry),
              );
            break;
          }
          started++;
          try {
            await member.apply(tx, claimOf(claims, i));
          } catch (error) {
            failedAt = i;
            failure = error;
            throw error;
          }
        }
      });
    } catch {
      // Rolled back: nothing of the batch committed. The member whose own work failed gets its error;
      // everyone else (all, when the failure came from the grouping or from the commit) runs again alone,
      // or, behind a key's earlier member, waits for its turn. Those that do not run again are refused
      // together: their marks are all taken back before any of them hears of it.
      const own = failedAt >= 0 && !batchCaused(failure) ? failedAt : -1;
      this.#options.onTransaction?.(batch.length);
      const refused: Refusal[] = [];
      const again: Array<Promise<void>> = [];
      for (const [i, m] of batch.entries()) {
        if (i === own) refused.push([m, failure]);
        else if (m.ticket?.previous) refused.push([m, new OutOfTurnError()]);
        else again.push(this.#alone(m).then(m.resolve, (error: unknown) => refuse([[m, error]])));
      }
      await Promise.all([refuse(refused), ...again]);
      return;
    }
    this.#options.onTransaction?.(started);
    for (let i = 0; i < started; i++) batch[i]?.resolve(claimOf(claims, i));
    // Members left out by the time budget: their inbox rows were taken back in the shared transaction. Each
    // key's chain of them goes on in a transaction of its own, in parallel with the others: what is ahead of
    // its first member has just committed, so its turn has come, though that one has not settled yet (sent
    // back out of turn, it would take back its start mark and take it again, for nothing).
    await Promise.all(chainsOf(batch.slice(started)).map((chain) => this.#together(chain)));
  }
}

type Refusal = readonly [member: Member, error: unknown];

/**
 * Ends members' attempts without their effects: first their start marks are taken back, all asked for in
 * this turn (the inbox store writes them in one statement), then each gets its error. A refused member has
 * often given its concurrency slot back (it waited for its turn to join the transaction) and, on a busy
 * consumer, waits a while for one before its failure reaches the poison guard; it is only waiting then, and
 * a crash meanwhile must not find it marked as running. Refused together, none of them (the failed member
 * reporting its retry, say) goes on before every mark is gone.
 */
async function refuse(refused: readonly Refusal[]): Promise<void> {
  await Promise.allSettled(refused.map(([m, error]) => m.end?.(error)));
  for (const [m, error] of refused) m.reject(error);
}

/** The work's failure, once its start mark is taken back (see `refuse`). */
async function ended(work: EffectWork, error: unknown): Promise<never> {
  await work.end?.(error);
  throw error;
}

/** Splits members into their keys' chains, each in key order (a member's predecessor, if any, is before it). */
function chainsOf(members: Member[]): Member[][] {
  const chains: Member[][] = [];
  const chainOf = new Map<LaneTicket, Member[]>();
  for (const m of members) {
    const previous = m.ticket?.previous;
    let chain = previous ? chainOf.get(previous) : undefined;
    if (chain) chain.push(m);
    else {
      chain = [m];
      chains.push(chain);
    }
    if (m.ticket) chainOf.set(m.ticket, chain);
  }
  return chains;
}

function claimOf(claims: Claim[], i: number): Claim {
  const claim = claims[i];
  if (!claim) throw new Error(`the inbox answered ${claims.length} claims for a larger batch`);
  return claim;
}
