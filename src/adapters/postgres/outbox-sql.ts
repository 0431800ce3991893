import { derivedOffset, derivedPartition, derivedSentAt, derivedState, walBatchJoin, insertOnlyDefault } from './stream-sent-sql.ts';

/**
 * Every statement the dedicated outbox runs, in one place. `s` is the validated, quoted schema name;
 * values are always parameters.
 */
export function outboxSql(s: string, options: { notifyChannel: string | undefined; holdKeyOnParked: boolean }) {
  // Order per key, across producers: the relay sends a key in seq_id order, so seq_id must be drawn
  // in commit order. Every enqueue first locks its key's row in outbox_key_lock (ON CONFLICT DO UPDATE
  // ... WHERE false locks an existing row without writing a new version; a new row is held by its
  // uncommitted insert) and keeps it until the caller commits; seq_id is drawn only after that, so an
  // enqueue that waits for the key gets a higher seq_id than the transaction it waited for, which has
  // committed (or rolled back) by then. Both seq_id draws read from `locked`, which reads the lock CTE:
  // the data dependency, not CTE order (unspecified in Postgres), puts the lock first.
  // The per-(producer, key) sequence bump also runs after the lock; its row lock makes the sequence
  // gapless (a rollback undoes it). With sequencing off only the sequence is skipped, never the key lock.
  // The bump is a plain UPDATE (`bump`, after the lock: its one-time filter reads `locked`), and only a key
  // seen for the first time takes the upsert (`fresh`): an upsert that finds its row writes a lock record
  // before its update, one WAL record more per message for the database and for every reader of its WAL
  // (a WAL relay's walsender pays per record; docs/benchmarks.md, "WAL records per message").
  // A duplicate message_id inserts nothing (on conflict do nothing: no error, so the caller's transaction
  // stays usable); the row reports the duplicate (seq null) and whether the sequence was bumped, which
  // unbumpSeq then takes back, still under the (producer, key) row lock. Its columns are single lowercase
  // words: an ORM that renames result columns (Kysely's CamelCasePlugin, postgres.js `transform:
  // postgres.camel`) turned `key_seq` into `keySeq`, and every enqueue into a false duplicate.
  const insert = `
    with key_lock as (
      insert into ${s}.outbox_key_lock (key_hash) values (hashtextextended($3, 0))
      on conflict (key_hash) do update set key_hash = excluded.key_hash where false
      returning 1
    ), locked as (
      select count(*) as n from key_lock
    ), bump as (
      update ${s}.outbox_key_seq set seq = seq + 1
      where producer_id = $6 and msg_key = $3 and $9::boolean and (select n from locked) is not null
      returning seq
    ), fresh as (
      insert into ${s}.outbox_key_seq (producer_id, msg_key, seq)
      select $6, $3, 1 from locked where $9::boolean and not exists (select 1 from bump)
      on conflict (producer_id, msg_key) do update set seq = ${s}.outbox_key_seq.seq + 1
      returning seq
    ), seq as (
      select b.seq, nextval('${s}.outbox_seq_id_seq') as seq_id from (select seq from bump union all select seq from fresh) b
    ), ins as (
      insert into ${s}.outbox (seq_id, message_id, topic, msg_key, msg_type, trace_id, producer_id, key_seq, headers, payload)
      select v.seq_id, $1, coalesce(d.target_topic, $2), $3, $4, $5, $6, v.seq, $7::jsonb || jsonb_build_object('zl-seq', v.seq::text), $8
      from (
        select coalesce((select seq from seq), 0) as seq,
               coalesce((select seq_id from seq), (select nextval('${s}.outbox_seq_id_seq') from locked)) as seq_id
      ) v
      -- a divert rule (O4) for this topic and type, or for all its types ('*'), sends it elsewhere
      left join lateral (
        select dr.target_topic from ${s}.topic_divert dr
        where dr.topic = $2 and dr.msg_type in ($4, '*') order by (dr.msg_type = '*') limit 1
      ) d on true
      on conflict (message_id) do nothing
      returning key_seq
    )
    select (select key_seq from ins) as seq, (select seq from seq) as bumped${
      // A text column, not pg_notify's void: some drivers (Prisma) refuse to decode void.
      options.notifyChannel ? `, pg_notify('${options.notifyChannel}', '')::text as notified` : ''
    }`;

  const unbumpSeq = `update ${s}.outbox_key_seq set seq = seq - 1 where producer_id = $1 and msg_key = $2`;

  // Whether the tables enqueue writes exist; checked once per store, before its first insert, because a
  // missing table would otherwise abort the caller's transaction.
  const writeTables = `select to_regclass('${s}.outbox') is not null and to_regclass('${s}.outbox_key_lock') is not null as ok`;

  // Which rows hold a key back: anything unsent, and parked rows only when configured to.
  const blocking = options.holdKeyOnParked ? 'p.state <> 1' : 'p.state in (0, 2)';

  // Claim: the oldest due rows, skipping rows another claimer holds, and only rows whose earlier
  // same-key rows are all sent or claimed in this very statement, so a key is never sent out of order
  // by two instances or by a retry overtaking a later row.
  // A candidate is blocked when an unsent row of its key that this claim does not hold comes before it,
  // i.e. when it comes after its key's first such row (`blocked`). Written this way, and bounded by the
  // last candidate, the check costs the same whatever the table statistics say and however long the
  // backlog is: a per-candidate correlated probe into the claim degrades into a nested loop of
  // candidates x unsent rows when the planner underestimates the claim (a table not yet analysed).
  // `state <> 1 and state <> 3` rather than `state in (0, 2)`: the latter matches outbox_due's predicate,
  // and on a table without statistics (fresh, or autovacuum off) the planner then bitmap-scanned every
  // due row and sorted them all for each claim of 500 (90-400 ms on a 200k backlog); this form matches
  // only the indexes of unsent rows, and the planner walks outbox_unsent in seq_id order and stops after
  // the batch (8 ms). `blocked` is materialized so that a claim the planner thinks is one row (statistics
  // from before a burst) cannot rerun it once per candidate: 1.5 s -> 0.2 s per claim (docs/benchmarks.md).
  // `prev_lease_until_ms`: recording an outcome (sent, failed, released) clears the lease, so a lease still
  // set on a claimable row is an earlier claim that recorded nothing: its holder died or hung, perhaps after
  // the broker acknowledged the send. The relay then asks the broker before it sends the row again.
  // Due and not leased: the rows a claim may take. Kept in this form (see above) so the planner walks outbox_unsent.
  const claimable = 'state <> 1 and state <> 3 and next_attempt_at <= now() and (lease_until is null or lease_until < now())';
  // `claimPastHeldKeys`, run by the store after a claim came back empty. A claim takes the oldest `limit` due
  // rows and keeps those no earlier row of their key holds back, so keys held by a parked row, a row in its
  // retry delay or a live lease, with `limit` or more due rows, fill the window and hide every other key's rows
  // for as long as the hold lasts. This form looks at the keys of the oldest `8 x limit` due rows, probes each
  // one's first unsent row (outbox_key_unsent), and leaves the held keys out before taking the window, so the
  // rows behind them are found. Only when a key is stuck (parked, or in its retry delay): keys held by live
  // leases alone are claims in flight whose holder takes their next rows itself (or, dead, loses them when its
  // lease ends), and walking past their rows is the costly part (docs/reliability.md, "A held key with a batch
  // of rows behind it"), paid by every instance whose claims the others' leases left empty. Held keys first
  // seen after the look could still fill the window if `limit` of their rows came with no other key's between.
  const stuck = options.holdKeyOnParked ? '(f.state = 3 or f.next_attempt_at > now())' : 'f.next_attempt_at > now()';
  const heldKeys = `look as (
      select distinct topic, msg_key from (
        select topic, msg_key from ${s}.outbox where ${claimable} order by seq_id limit 8 * $2::int
      ) w
    ), held as materialized (
      select k.topic, k.msg_key, ${stuck} as stuck from look k
      cross join lateral (
        select p.state, p.next_attempt_at, p.lease_until from ${s}.outbox p
        where p.topic = k.topic and p.msg_key = k.msg_key and ${blocking}
        order by p.seq_id
        limit 1
      ) f
      where ${stuck} or f.lease_until >= now()
    ), `;
  const pastHeldKeys = 'and exists (select 1 from held where stuck) and (topic, msg_key) not in (select topic, msg_key from held)';
  // Only the rows a claim keeps are locked, not its whole window (`keptRowsOf`, below).
  const claimOf = (pastHeld: boolean) => `
    with ${pastHeld ? heldKeys : ''}cand as (
      select seq_id, topic, msg_key from ${s}.outbox
      where ${claimable} ${pastHeld ? pastHeldKeys : ''}
      order by seq_id
      limit $2
    ), blocked as materialized (
      select p.topic, p.msg_key, min(p.seq_id) as first_seq_id from ${s}.outbox p
      where ${blocking} and p.seq_id < (select max(seq_id) from cand)
        and (p.topic, p.msg_key) in (select topic, msg_key from cand)
        and p.seq_id not in (select seq_id from cand)
      group by p.topic, p.msg_key
    ), ok as materialized (
      select c.seq_id, c.topic, c.msg_key from cand c
      left join blocked b on b.topic = c.topic and b.msg_key = c.msg_key
      where b.first_seq_id is null or c.seq_id < b.first_seq_id
    ), ${keptRowsOf(s, claimable)}
    update ${s}.outbox o
    set lease_owner = $1, lease_until = now() + $3 * interval '1 millisecond', attempts = o.attempts + 1
    from kept where o.seq_id = kept.seq_id
    returning o.seq_id::text as ref, o.message_id, o.topic, o.msg_key, o.headers, o.payload, o.attempts, o.state,
      (extract(epoch from kept.prev_lease_until) * 1000)::float8 as prev_lease_until_ms`;
  const claim = claimOf(false);
  const claimPastHeldKeys = claimOf(true);

  // The state before (for the transition) is read from the statement's snapshot (`old`), not from a
  // `select ... for update` first: locking wrote a lock record per row before the update wrote its own
  // (EXPLAIN ANALYZE, 500 rows: 26 KB of WAL, 0.5-9 ms on a busy machine). The update itself waits for a
  // concurrent writer and rechecks `state <> 1` on the row's newest version, so a row another writer marked
  // sent meanwhile (reconcile, a relay that took the row after this one's lease ran out) is still skipped.
  // What this gives up: if such a writer recorded a failure on the row during this statement, the sent
  // transition names the state this statement saw (pending or failed) as its `from_state`; the row's state
  // and every column are the same as before.
  // First-attempt sends (pending to sent at attempt 1, nearly every row) share one transition row, `batch`:
  // no message_id, the rows' seq_ids, and each row points at it with sent_batch (migration 016); trace and
  // the metrics collector read it as one 0 -> 1 transition per row (operations-sql.ts). Any other send
  // (a retry, a row an earlier claim left, a released row's later attempt) keeps its own transition row.
  const markSent = `
    with r as (select * from unnest($1::bigint[], $2::int[], $3::bigint[]) as r(id, part, off)),
    b as (select nextval('${s}.outbox_transition_id_seq') as id),
    upd as (
      update ${s}.outbox o
      set state = 1, sent_at = now(), modified_time = now(), lease_owner = null, lease_until = null,
          sent_partition = r.part, sent_offset = r.off,
          sent_batch = case when old.state = 0 and o.attempts = 1 then (select id from b) end
      from r join ${s}.outbox old on old.seq_id = r.id
      where o.seq_id = r.id and o.state <> 1
      returning o.seq_id, o.message_id, old.state as from_state, o.attempts, o.sent_batch
    ),
    batch as (
      insert into ${s}.outbox_transition (id, message_id, from_state, to_state, attempt, actor, seq_ids)
      select (select id from b), null, 0, 1, 1, $4, array_agg(seq_id order by seq_id) from upd
      where sent_batch is not null having count(*) > 0
    )
    insert into ${s}.outbox_transition (message_id, from_state, to_state, attempt, actor)
    select message_id, from_state, 1, attempts, $4 from upd where sent_batch is null`;

  // Only the lease holder records a failure, and never over a row already marked sent by someone else.
  const markFailed = `
    with r as (
      select * from unnest($1::bigint[], $2::smallint[], $3::text[], $4::double precision[], $5::boolean[], $6::boolean[])
        as r(id, to_state, err, delay_ms, charge, keep)
    ),
    old as (
      select o.seq_id, o.state from ${s}.outbox o join r on o.seq_id = r.id
      where o.state <> 1 and o.lease_owner = $7 for update of o
    ),
    upd as (
      update ${s}.outbox o
      set state = case when r.keep then o.state else r.to_state end,
          last_error = coalesce(r.err, o.last_error), modified_time = now(),
          next_attempt_at = now() + r.delay_ms * interval '1 millisecond',
          lease_owner = null, lease_until = null,
          attempts = case when r.charge then o.attempts else o.attempts - 1 end
      from r, old where o.seq_id = r.id and old.seq_id = o.seq_id
      returning o.message_id, old.state as from_state, o.state as to_state, o.attempts, r.err, r.keep
    ),
    tr as (
      insert into ${s}.outbox_transition (message_id, from_state, to_state, attempt, error, actor)
      select message_id, from_state, to_state, attempts, err, $7 from upd where not keep
    )
    select message_id, to_state from upd where not keep`;

  // Walks outbox_due from the oldest due time: stops at the first claimable row, and never reaches rows
  // whose backoff has not elapsed or parked rows (not in the index); only rows leased right now are skipped.
  // `newest` (the primary key's last entry) tells a relay whether rows were added since its last claim.
  const anyDue = `
    select (
      select 1 from ${s}.outbox
      where state in (0, 2) and next_attempt_at <= now() and (lease_until is null or lease_until < now())
      order by next_attempt_at limit 1
    ) is not null as due, (select max(seq_id) from ${s}.outbox)::text as newest`;

  // The polling relay's rows only: a row still in the WAL stream (insert-only: state 1, no sent_at) is counted as none of these.
  const backlog = `
    select
      count(*) filter (where state = 0)::int as pending,
      count(*) filter (where state = 2)::int as failed,
      count(*) filter (where state = 3)::int as parked,
      coalesce(extract(epoch from now() - min(created_at) filter (where state in (0, 2))) * 1000, 0)::float8 as oldest_ms,
      (select extract(epoch from min(next_attempt_at) - now()) * 1000 from ${s}.outbox where state in (0, 2))::float8 as next_due_ms
    from ${s}.outbox where state <> 1`;

  // The synchronous send mode's poll: every waiter of one outbox shares it, so it takes all their ids at
  // once; each is a probe of the unique message_id index. Offsets as text: a bigint past 2^53 stays exact.
  // Sent as stream-sent-sql.ts derives it: a row the WAL relay's insert-only mode has not recorded in a
  // batch yet is pending, so a waiter is not told "sent" for a row still in the stream; once a batch lists
  // it, the batch's time, partition and offset are its send.
  const sendStatus = `
    select o.message_id, ${derivedState()} as state, o.topic, ${derivedPartition()} as sent_partition,
      ${derivedOffset()}::text as sent_offset, ${derivedSentAt()} as sent_at, o.last_error, o.attempts
    from ${s}.outbox o ${walBatchJoin(s)} where o.message_id = any($1::text[])`;

  // The polling relay must not poll an insert-only outbox: its rows are the WAL stream's (state 1), so it
  // would find nothing to send and report nothing pending while the stream's rows wait.
  const insertOnly = `select ${insertOnlyDefault(s)} as on`;

  return { insert, unbumpSeq, writeTables, claim, claimPastHeldKeys, markSent, markFailed, backlog, anyDue, sendStatus, insertOnly };
}

/**
 * The last CTEs of a claim, after `ok` (its candidates no earlier unsent row of their key holds back, read
 * from the statement's snapshot): `kept`, the rows it takes, locked, with `prev_lease_until`. Only these are
 * locked, not the claim's whole window: an empty claim (every key held by another instance's lease) used to
 * lock its 500 candidates for the length of the statement, exactly the rows the working instance claims
 * next, which then skipped them and found the rest of their keys blocked behind them. Locking re-reads each
 * row's newest version (`claimable` again), so a row another claim took or another writer changed since the
 * snapshot is left out, and with it every later row of its key (`unlocked`): a key is taken from its first
 * unsent row on, or not at all. Shared with the WAL mode's polling path (wal-sql.ts).
 */
export function keptRowsOf(s: string, claimable: string): string {
  return `locked as materialized (
      select seq_id, lease_until from ${s}.outbox
      where seq_id = any(array(select seq_id from ok)) and ${claimable}
      for update skip locked
    ), unlocked as (
      select topic, msg_key, min(seq_id) as first_seq_id from ok
      where seq_id not in (select seq_id from locked)
      group by topic, msg_key
    ), kept as (
      select k.seq_id, l.lease_until as prev_lease_until from ok k
      join locked l on l.seq_id = k.seq_id
      left join unlocked u on u.topic = k.topic and u.msg_key = k.msg_key
      where u.first_seq_id is null or k.seq_id < u.first_seq_id
    )`;
}
