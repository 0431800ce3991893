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
 * commit. Ready messages beyond `maxMessages` form further transactions that run in parallel, so both the
 * commit count and the round trips per message drop without serialising everything on one connection.
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
    if (this.#options.maxMessages <= 1) return this.#alone(work);
    const claim = new Promise<Claim>((resolve, reject) => {
      this.#enqueue({ ...work, resolve, reject });
    });
    work.ticket?.set('submitted');
    return claim;
  }

  #flush(ready: Member[]): void {
    // A key's messages form one chain, in key order (a successor is queued after its predecessor), and a
    // chain is never split between transactions.
    const chains: Member[][] = [];
    const chainOf = new Map<LaneTicket, Member[]>();
    let members = 0;
    for (const m of ready) {
      const previous = m.ticket?.previous;
      let chain = previous ? chainOf.get(previous) : undefined;
      if (previous && !chain) {
        m.reject(new OutOfTurnError());
        continue;
      }
      if (chain) chain.push(m);
      else {
        chain = [m];
        chains.push(chain);
      }
      if (m.ticket) {
        chainOf.set(m.ticket, chain);
        m.ticket.set('running');
      }
      members++;
    }
    // Even shares, so 20 ready with a limit of 16 make two transactions of 10, not 16 and 4.
    const size = Math.ceil(members / Math.ceil(members / this.#options.maxMessages));
    let batch: Member[] = [];
    for (const chain of chains) {
      if (batch.length > 0 && batch.length + chain.length > size) {
        void this.#together(batch);
        batch = [];
      }
      batch.push(...chain);
    }
    if (batch.length > 0) void this.#together(batch);
  }

  /** A member of a batch that did not commit: alone, if its turn has come; else it waits for it. */
  #again(m: Member): Promise<void> | undefined {
    if (m.ticket?.previous) {
      m.reject(new OutOfTurnError());
      return undefined;
    }
    return this.#alone(m).then(m.resolve, m.reject);
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
      await this.#alone(m).then(m.resolve, m.reject);
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
      // or, behind a key's earlier member, waits for its turn.
      const own = failedAt >= 0 && !batchCaused(failure) ? failedAt : -1;
      if (own >= 0) batch[own]?.reject(failure);
      this.#options.onTransaction?.(batch.length);
      await Promise.all(batch.map((m, i) => (i === own ? undefined : this.#again(m))));
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
