/**
 * TEST-ONLY deliberately broken claim, for `npm run faults -- relay-zombie --broken claim-without-key-hold`:
 * it proves the checker fails when a relay may overtake a key whose earlier row another relay holds. It is
 * the shipped claim (src/adapters/postgres/outbox-sql.ts) minus its key hold (`blocked`): the oldest due,
 * unleased rows are taken whatever their key's earlier rows are doing. While a relay is frozen (SIGSTOP)
 * or dead holding a key's row under its lease, the other relay then sends that key's later rows first, and
 * the frozen row goes out after them once its lease ends: the key's order on the topic and in the effects
 * breaks. The fault lives here, never in src/.
 */
import { type ClaimRow, claimedRows } from '../src/adapters/postgres/postgres-outbox-store.ts';
import type { RelaySource } from '../src/ports/outbox-store.ts';
import type { Database } from '../src/ports/sql-executor.ts';

export function claimWithoutKeyHold(inner: RelaySource, db: Database, schema: string): RelaySource {
  const s = `"${schema}"`;
  const sql = `
    with cand as (
      select seq_id, lease_until from ${s}.outbox
      where state <> 1 and state <> 3 and next_attempt_at <= now() and (lease_until is null or lease_until < now())
      order by seq_id
      limit $2
      for update skip locked
    )
    update ${s}.outbox o
    set lease_owner = $1, lease_until = now() + $3 * interval '1 millisecond', attempts = o.attempts + 1
    from cand where o.seq_id = cand.seq_id
    returning o.seq_id::text as ref, o.message_id, o.topic, o.msg_key, o.headers, o.payload, o.attempts, o.state,
      (extract(epoch from cand.lease_until) * 1000)::float8 as prev_lease_until_ms`;
  return {
    name: inner.name,
    wakeChannel: inner.wakeChannel,
    async claim(owner, limit, leaseMs) {
      const { rows } = await db.query<ClaimRow>(sql, [owner, limit, leaseMs]);
      return claimedRows(rows);
    },
    markSent: (owner, sent) => inner.markSent(owner, sent),
    markFailed: (owner, failed) => inner.markFailed(owner, failed),
    backlog: () => inner.backlog(),
    anyDue: inner.anyDue ? () => inner.anyDue?.() ?? Promise.resolve({ due: false }) : undefined,
  };
}
