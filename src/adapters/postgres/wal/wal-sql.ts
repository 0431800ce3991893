import { keptRowsOf } from '../outbox-sql.ts';
import { inStreamCondition, inStreamRows, insertOnlyDefault } from '../stream-sent-sql.ts';

/**
 * Every statement of the WAL relay, in one place. `s` is the validated, quoted schema; `slot` and
 * `publication` are validated names (they are also passed as values where Postgres takes a value).
 */
export function walSql(s: string, names: { publication: string }) {
  const publication = `"${names.publication}"`;

  // Insert-only: the relay's own state updates and retention's deletes never enter the stream, and a
  // delete never needs a replica identity.
  const publicationExists = 'select 1 from pg_publication where pubname = $1';
  const createPublication = `create publication ${publication} for table ${s}.outbox with (publish = 'insert')`;

  // `lost`: past max_slot_wal_keep_size the server removed WAL the slot needs; it can never stream again.
  const slotInfo = `
    select slot_name, plugin, active, active_pid, confirmed_flush_lsn::text as confirmed_flush_lsn,
      current_setting('server_version_num')::int as server_version, coalesce(wal_status = 'lost', false) as lost
    from pg_replication_slots where slot_name = $1`;
  // Waits for transactions running now to end, then returns at the slot's consistent point: a transaction
  // committing after it is in the stream, one committed before it is visible to the next statement.
  const createSlot = `select lsn::text as lsn from pg_create_logical_replication_slot($1, 'pgoutput')`;
  // The first statement of a slot's creation: its hand-over must read the rows of the writers the
  // creation waited for, which a snapshot taken before the slot (repeatable read or serializable set as the
  // database's or role's default) does not see; they would stay pending, outside the stream, unsent.
  const readCommitted = 'set transaction isolation level read committed';
  const dropSlot = 'select pg_drop_replication_slot($1)';
  // Held by createSlot's transaction from before the slot exists until its hand-over commits. A relay that
  // finds the slot tries the shared lock (autocommit: released at once) and stands by while it cannot get
  // it: streaming before the hand-over commits would send a key's new rows ahead of its handed-over ones.
  const slotCreationLock = `select pg_advisory_xact_lock(hashtext('zeroloss wal slot'), hashtext($1))`;
  // `done`: no creation holds the lock; `recorded`: the slot's hand-over committed (migration 20). A slot
  // found with the lock free and no record is a leftover of a creation that died before its hand-over
  // committed: the rows before it are in neither its stream nor the polling path, so nobody may read it.
  // The lock alone: what a schema before migration 20 has.
  const slotCreationFree = `select pg_try_advisory_xact_lock_shared(hashtext('zeroloss wal slot'), hashtext($1)) as done`;
  // A slot of an insert-only outbox (migration 21) is recorded as `insert-only:<slot>`: relays of a release
  // before the mode look for `<slot>`, find no record and stand by, so none of them ever streams rows it
  // would record as neither sent nor failed (they look for state 0 to fail, state <> 1 to mark sent).
  const slotCreationDone = `${slotCreationFree}, exists (select 1 from ${s}.wal_slot where slot_name in ($1, 'insert-only:' || $1)) as recorded`;
  // Written in the hand-over's transaction; forgotten before a slot is dropped.
  const recordSlot = `
    insert into ${s}.wal_slot (slot_name, handed_over) values ($1, $2)
    on conflict (slot_name) do update set handed_over = excluded.handed_over, handed_over_at = now()`;
  const slotRecorded = `select exists (select 1 from ${s}.wal_slot where slot_name in ($1, 'insert-only:' || $1)) as recorded`;
  const forgetSlot = `delete from ${s}.wal_slot where slot_name in ($1, 'insert-only:' || $1)`;
  const recordedSlots = `select case when slot_name like 'insert-only:%' then substr(slot_name, 13) else slot_name end as slot_name from ${s}.wal_slot`;
  // Every recorded slot under the mode's name ($1: true for insert-only).
  const markSlots = `
    update ${s}.wal_slot set slot_name = case when $1::boolean then 'insert-only:' || slot_name else substr(slot_name, 13) end
    where (slot_name like 'insert-only:%') <> $1::boolean`;
  // The outbox's slots that exist now ($1: its default slot's name), never another schema's; `shard` for its
  // shards' (wal_shard). One slot streams every row of the outbox, so a second single slot would send each
  // row again (both list it, each under its own slot), and while one is left the insert-only mode stays. A
  // slot is the outbox's if it has the default name, is a shard's, is named by a batch of this outbox, or
  // had its hand-over recorded by this schema (wal_slot) in a row migration 20 did not write: that
  // migration recorded every logical slot of the database in every schema, other schemas' too, all in its
  // own transaction, so those rows carry its applied_at (the same now()), and a creation records its slot
  // in a transaction of its own. Not found: a slot under another name, made before migration 20 and never
  // read in the insert-only mode.
  const outboxSlots = `
    select r.slot_name as slot, r.slot_name in (select w.slot from ${s}.wal_shard w) as shard
    from pg_replication_slots r
    where r.slot_type = 'logical' and r.database = current_database()
      and (r.slot_name = $1
        or r.slot_name in (select w.slot from ${s}.wal_shard w)
        or exists (select 1 from ${s}.outbox_wal_batch b where b.slot = r.slot_name)
        or exists (
          select 1 from ${s}.wal_slot w
          where w.slot_name in (r.slot_name, 'insert-only:' || r.slot_name)
            and w.handed_over_at is distinct from (select m.applied_at from ${s}.migrations m where m.version = 20)
        ))
    order by r.slot_name`;
  // Held by a single slot's creation, first in its transaction, so that two creations under different names
  // cannot both find no other slot ($1: the schema).
  const outboxSlotLock = `select pg_advisory_xact_lock(hashtext('zeroloss wal outbox'), hashtext($1))`;
  // Which of the slots $1 a relay reads now (the insert-only switch is refused while one does).
  const slotsRead = `select slot_name from pg_replication_slots where slot_name = any($1::text[]) and active order by slot_name`;
  // Which of the tables a drop touches exist (a schema before migrations 18, 20, 21 lacks some).
  const dropTables = `select to_regclass($1) is not null as slots, to_regclass($2) is not null as batches,
    to_regclass($3) is not null as shards`;
  // Waits this long at most for the outbox's lock when switching the mode, or for its writers when a slot is
  // made: a lock request queued behind a long transaction holds every enqueue back behind it.
  const lockTimeoutSeconds = 5;
  const lockTimeoutText = `${lockTimeoutSeconds} s`;
  const lockTimeout = `set local lock_timeout = '${lockTimeoutSeconds}s'`;
  // Run after a slot is created and before its hand-over, in a savepoint (`awaitOutboxWriters`,
  // insert-only-mode.ts). An enqueue whose commit record lies before the slot's consistent point is not in the
  // stream, but it may not be visible yet: PostgreSQL writes and flushes the commit record, waits for
  // synchronous standbys, and only then makes the transaction visible, and the hand-over's snapshot would
  // miss it (neither streamed nor handed over). It keeps its ROW EXCLUSIVE lock on the outbox until after it
  // is visible, so a SHARE lock is granted only once every writer of that moment is visible or gone. Taken
  // after the slot: a transaction holding it while the slot's creation waits for the running transactions
  // would deadlock with an enqueue waiting for it. Released at once (rolling back to the savepoint releases
  // a lock taken after it, and the lock timeout set there): enqueues wait only while it waits, not during
  // the hand-over, whose read-committed statement then takes a fresh snapshot.
  const writersSavepoint = 'savepoint zeroloss_outbox_writers';
  const lockOutboxWriters = `lock table ${s}.outbox in share mode`;
  const releaseOutboxWriters = 'rollback to savepoint zeroloss_outbox_writers';
  // doctor: the schemas of this database that record their slots' hand-overs (migration 20 and later).
  const slotTableSchemas = `
    select n.nspname as schema from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relname = 'wal_slot' and c.relkind = 'r'`;

  // Run right after the slot is created: rows committed before its consistent point are not in the stream,
  // so the polling path sends them (state 2, uncharged, due now), and their keys are held back until it has.
  // In the insert-only mode (migration 21) that includes rows inserted for an earlier slot's stream and
  // never recorded as sent (a dropped or lost slot): no stream brings them now. Their scan reads the whole
  // outbox (no index holds them), once, when a slot is made.
  const handOver = handOverStatement(s, 'handed to the polling path when the WAL slot was created', { pending: true });
  // When the slot is dropped: rows inserted for its stream and not yet recorded as sent go to the polling path.
  const handOverInStream = handOverStatement(s, 'handed to the polling path when the WAL slot was dropped', { pending: false });

  // The insert-only mode is the outbox's state default: 1 inserts rows for the stream (sent once a batch
  // records them), 0 for the polling path. ALTER ... SET DEFAULT takes the table's strongest lock for a
  // moment (it waits for running enqueues, and holds new ones until its transaction ends).
  const setStateDefault = (state: 0 | 1) => `alter table ${s}.outbox alter column state set default ${state}`;
  const insertOnlyOn = `select ${insertOnlyDefault(s)} as on`;

  // Where a reading began (PgWalStream.readingFrom): at least the end of every commit received before it.
  const currentLsn = 'select pg_current_wal_insert_lsn()::text as lsn';

  // How many of a batch's rows exist now (a fresh statement, a fresh snapshot).
  const presentRows = `select count(*)::int as n from ${s}.outbox where seq_id = any($1::bigint[])`;

  // One statement per batch (in the insert-only mode, for the rows inserted before it was switched on, and
  // failures). Sent rows: state 1 with where the broker put them. First sends (pending to sent at attempt 1,
  // nearly every row) share one transition row, as the polling relay's rounds do (outbox-sql.ts markSent):
  // no message_id, the rows' seq_ids, each row pointing at it with sent_batch; the metrics collector and
  // trace read it as one 0 -> 1 transition per row. Any other send keeps its own transition. Failed rows (their own failure, or held back behind one of their key)
  // go to state 2 for the polling path, with a transition row each (rare). `state <> 1` / `state = 0`
  // make a replayed batch (after a crash before the acknowledgement) change nothing twice.
  // `visible` counts the batch's rows this statement could see: the slot may stream a transaction as soon
  // as its commit record is flushed, a moment before the commit is visible to other sessions, and an
  // UPDATE silently skips a row it cannot see yet. The caller repeats the statement until all are seen.
  const record = `
    with s as (
      select * from unnest($1::bigint[], $2::int[], $3::bigint[]) as s(id, part, off)
    ), b as (
      select nextval('${s}.outbox_transition_id_seq') as id
    ), old as materialized (
      -- the rows as they were, for the transitions' from_state: looked up by primary key (a join to the
      -- outbox inside the UPDATE was planned as a hash join over the whole table, 30 ms at 100,000 rows)
      select seq_id, state, attempts from ${s}.outbox where seq_id = any($1::bigint[])
    ), sent as (
      update ${s}.outbox o
      set state = 1, sent_at = now(), modified_time = now(), sent_partition = s.part, sent_offset = s.off,
          attempts = o.attempts + 1, sent_batch = case when old.state = 0 and old.attempts = 0 then (select id from b) end
      from s join old on old.seq_id = s.id
      where o.seq_id = s.id and o.state <> 1
      returning o.seq_id, o.message_id, old.state as from_state, o.attempts, o.sent_batch
    ), batch as (
      insert into ${s}.outbox_transition (id, message_id, from_state, to_state, attempt, actor, seq_ids)
      select (select id from b), null, 0, 1, 1, $8, array_agg(seq_id order by seq_id) from sent
      where sent_batch is not null having count(*) > 0
    ), own as (
      insert into ${s}.outbox_transition (message_id, from_state, to_state, attempt, actor)
      select message_id, from_state, 1, attempts, $8 from sent where sent_batch is null
    ), f as (
      select * from unnest($4::bigint[], $5::text[], $6::double precision[], $7::boolean[]) as f(id, err, delay_ms, charge)
    ), failed as (
      update ${s}.outbox o
      set state = 2, last_error = f.err, modified_time = now(),
          next_attempt_at = now() + f.delay_ms * interval '1 millisecond',
          attempts = o.attempts + case when f.charge then 1 else 0 end
      from f where o.seq_id = f.id and (o.state = 0 or ${inStreamCondition(s, 'o')})
      returning o.message_id, o.attempts, f.err
    ), tr as (
      insert into ${s}.outbox_transition (message_id, from_state, to_state, attempt, error, actor)
      select message_id, 0, 2, attempts, err, $8 from failed
    )
    select (select count(*) from sent)::int as sent, (select count(*) from failed)::int as failed,
      (select count(*) from ${s}.outbox where seq_id = any($1::bigint[]) or seq_id = any($4::bigint[]))::int as visible`;

  // The insert-only mode's record (migration 21): one row for the batch's sent rows inserted for the stream,
  // listing their seq_ids, partitions and offsets; the outbox rows are not touched. $1 slot, $2-$5 per row:
  // seq_id, partition, offset, the end LSN of its commit (null for a part of a large transaction), $6 the
  // batch's end LSN, $7 where the reading began (PgWalStream.readingFrom, or null: see `checked`). A row whose
  // commit ends at or before what this slot has recorded may be a replay (a crash between record and
  // acknowledgement, or batches recorded out of order): it is looked up, and one already listed is counted as
  // resent and not listed again. So is a row another path recorded or took before this record (`taken`): sent
  // on the row (`sent_at`: the ack-vs-state repair, a resend, the polling path), or the polling path's (state
  // 2, 3, or 0 after a release); the stream's copy is then a duplicate, and listing it counted the row as
  // first sent a second time. `sent`: rows listed now. The rows listed now are also named by one transition
  // row (no message_id, their seq_ids, as the row mode's `record` writes), so the metrics collector counts
  // them as first sends with their commit-to-ack time.
  //
  // `checked`, the rows `taken` reads, leaves out the rows of commits that end after $7: those reached this
  // reading only, and another path marks a row only once the broker holds it or a batch lists it, so none had
  // the time to, save in the moment between this reading's send and this record (not covered, as a repair
  // committing while this statement runs is not: it takes no row lock). While a relay keeps up, that is every
  // row, and the statement reads no outbox row. The ledger passes null (every row looked at) while the
  // position is unknown and once a record of the reading failed (its retries may come long after the send).
  // Parts of a large transaction (no commit end) are always looked at. `taken` reads the rows set-based (state
  // and sent_at are on the row only; no index holds them): close seq_ids with one range scan of the primary
  // key (2,000 rows: about 200 buffers, +2 ms), spread ones (a shard's among the other shards', spanning 4
  // times their number or more, where both cost about the same) by an index probe each (+8 ms; measured in
  // docs/wal-relay.md).
  const recordBatch = `
    with s as (
      select * from unnest($2::bigint[], $3::int[], $4::bigint[], $5::pg_lsn[]) as s(id, part, off, commit_end)
    ), upto as (
      select max(end_lsn) as lsn from ${s}.outbox_wal_batch where slot = $1
    ), dup as materialized (
      select s.id from s, upto
      where s.commit_end <= upto.lsn and exists (
        select 1 from ${s}.outbox_wal_batch b
        where b.slot = $1 and int8range(b.seq_lo, b.seq_hi, '[]') @> s.id and s.id = any(b.seq_ids)
      )
    ), checked as (
      select id from s where $7::pg_lsn is null or s.commit_end is null or s.commit_end <= $7::pg_lsn
    ), span as materialized (
      select min(id) as lo, max(id) as hi, count(*) as n from checked
    ), taken as materialized (
      select o.seq_id as id from ${s}.outbox o
      where (select n > 0 and hi - lo < 4 * n from span) and o.seq_id between (select lo from span) and (select hi from span)
        and (o.state <> 1 or o.sent_at is not null)
      union all
      select o.seq_id from ${s}.outbox o
      where (select n > 0 and hi - lo >= 4 * n from span) and o.seq_id = any((select array_agg(id) from checked)::bigint[])
        and (o.state <> 1 or o.sent_at is not null)
    ), fresh as (
      select * from s where s.id not in (select id from dup) and s.id not in (select id from taken)
    ), ins as (
      insert into ${s}.outbox_wal_batch (slot, end_lsn, seq_lo, seq_hi, seq_ids, partitions, offsets)
      select $1, $6::pg_lsn, min(id), max(id), array_agg(id), array_agg(part), array_agg(off) from fresh
      having count(*) > 0
      returning 1
    ), tr as (
      insert into ${s}.outbox_transition (message_id, from_state, to_state, attempt, actor, seq_ids)
      select null, 0, 1, 1, 'wal:' || $1, array_agg(id order by id) from fresh
      having count(*) > 0
    )
    select (select count(*) from fresh)::int as sent, (select count(*) from ins)::int as batches`;

  // Rows the stream will not bring (again) and the polling path sends: failed ones (2), and pending ones an
  // operator released from parked (`release` sets 0; a fresh insert has modified_time = created_at, both
  // its transaction's now()). Parked rows (3) hold their key too, as in polling mode (holdKeyOnParked).
  const waiting = '(state = 2 or (state = 0 and modified_time > created_at))';

  // Keys whose later rows must not overtake an earlier one: every such row is unsent, so the scan stays
  // inside the unsent rows' partial indexes, which in WAL mode hold little besides rows not yet streamed.
  const heldKeys = `select distinct msg_key from ${s}.outbox where state <> 1 and (${waiting} or state = 3)`;

  // The polling path of WAL mode: the outbox claim (outbox-sql.ts) restricted to waiting rows; fresh rows
  // belong to the stream. Any earlier unsent row of a key (parked ones included) holds its later ones back;
  // a fresh row never comes before a waiting one of its key, since the stream records them in commit order.
  // `pastHeldKeys`: as the outbox's claim (outbox-sql.ts), run after an empty claim, it leaves out the keys a
  // parked row, a row in its retry delay or a live lease holds, whose due rows could fill the whole window
  // (a failed key's later rows come here held back, due at once) and hide every other key's failed rows.
  const heldKeysCte = `held as materialized (
      select distinct h.topic, h.msg_key from ${s}.outbox h
      where h.state <> 1 and (h.state = 3 or h.next_attempt_at > now() or h.lease_until >= now())
    ), `;
  // As the outbox's claim, it locks only the rows it keeps (`keptRowsOf`, outbox-sql.ts).
  const retryClaimable = `state <> 1 and state <> 3 and ${waiting} and next_attempt_at <= now() and (lease_until is null or lease_until < now())`;
  const retryClaimOf = (pastHeldKeys: boolean) => `
    with ${pastHeldKeys ? heldKeysCte : ''}cand as (
      select seq_id, topic, msg_key from ${s}.outbox
      where ${retryClaimable}
        ${pastHeldKeys ? 'and (topic, msg_key) not in (select topic, msg_key from held)' : ''}
      order by seq_id
      limit $2
    ), blocked as materialized (
      select p.topic, p.msg_key, min(p.seq_id) as first_seq_id from ${s}.outbox p
      where p.state <> 1 and p.seq_id < (select max(seq_id) from cand)
        and (p.topic, p.msg_key) in (select topic, msg_key from cand)
        and p.seq_id not in (select seq_id from cand)
      group by p.topic, p.msg_key
    ), ok as materialized (
      select c.seq_id, c.topic, c.msg_key from cand c
      left join blocked b on b.topic = c.topic and b.msg_key = c.msg_key
      where b.first_seq_id is null or c.seq_id < b.first_seq_id
    ), ${keptRowsOf(s, retryClaimable)}
    update ${s}.outbox o
    set lease_owner = $1, lease_until = now() + $3 * interval '1 millisecond', attempts = o.attempts + 1
    from kept where o.seq_id = kept.seq_id
    returning o.seq_id::text as ref, o.message_id, o.topic, o.msg_key, o.headers, o.payload, o.attempts, o.state`;
  const retryClaim = retryClaimOf(false);
  const retryClaimPastHeldKeys = retryClaimOf(true);

  const retryDue = `
    select (
      select 1 from ${s}.outbox
      where state in (0, 2) and ${waiting} and next_attempt_at <= now() and (lease_until is null or lease_until < now())
      order by next_attempt_at limit 1
    ) is not null as due`;

  // doctor: the server settings a slot depends on, and every logical slot with the WAL it holds back.
  const serverSettings = `
    select current_database() as database, current_setting('wal_level') as wal_level,
           current_setting('max_slot_wal_keep_size') as max_slot_wal_keep_size,
           current_setting('server_version_num')::int as version`;
  const slots = `
    select slot_name, plugin, database, active,
           pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 as retained_bytes,
           pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::float8 as lag_bytes,
           wal_status,
           -- Who reads it: a shard's reader names its relay instance in application_name.
           (select nullif(a.application_name, '') from pg_stat_activity a where a.pid = active_pid) as holder
    from pg_replication_slots where slot_type = 'logical' order by slot_name`;

  return {
    publicationExists,
    createPublication,
    slotInfo,
    createSlot,
    readCommitted,
    dropSlot,
    slotCreationLock,
    slotCreationDone,
    slotCreationFree,
    recordSlot,
    slotRecorded,
    forgetSlot,
    recordedSlots,
    markSlots,
    outboxSlots,
    outboxSlotLock,
    slotsRead,
    dropTables,
    lockTimeout,
    lockTimeoutText,
    writersSavepoint,
    lockOutboxWriters,
    releaseOutboxWriters,
    slotTableSchemas,
    handOver,
    handOverInStream,
    setStateDefault,
    insertOnlyOn,
    record,
    recordBatch,
    currentLsn,
    presentRows,
    heldKeys,
    retryClaim,
    retryClaimPastHeldKeys,
    retryDue,
    serverSettings,
    slots,
  };
}

/**
 * A hand-over to the polling path: the rows go to state 2 (uncharged, due now) with a transition row each, in
 * one statement; $1 the actor. `pending`: state-0 rows too (a slot's creation: they predate its stream), not
 * only the rows still in a stream (`inStreamRows`). `keys`: a further condition on `o` (shards' keys);
 * `shardOf`: an expression of `o`, the count is then returned per value of it (`shard`, `n`), else one `n`.
 * The two kinds are two updates of disjoint rows, so that `inStreamRows` stands at the top of its WHERE and
 * is planned as an anti join (under `state = 0 or ...` it was probed once per row).
 */
export function handOverStatement(s: string, reason: string, options: { pending: boolean; keys?: string; shardOf?: string }): string {
  const set = `set state = 2, next_attempt_at = now(), modified_time = now(), last_error = '${reason}'`;
  const and = options.keys === undefined ? '' : ` and ${options.keys}`;
  const returning = `returning o.message_id, o.attempts${options.shardOf === undefined ? '' : `, ${options.shardOf} as shard`}`;
  const pending = options.pending
    ? `pending as (
      update ${s}.outbox o ${set}
      where o.state = 0${and}
      ${returning}
    ), `
    : '';
  return `
    with ${pending}streamed as (
      update ${s}.outbox o ${set}
      where ${inStreamRows(s, 'o')}${and}
      ${returning}
    ), moved as (
      ${options.pending ? 'select * from pending union all ' : ''}select * from streamed
    ), tr as (
      insert into ${s}.outbox_transition (message_id, from_state, to_state, attempt, error, actor)
      select message_id, 0, 2, attempts, '${reason}', $1 from moved
    )
    ${options.shardOf === undefined ? 'select count(*)::int as n from moved' : 'select shard, count(*)::int as n from moved group by shard'}`;
}
