import {
  derivedOffset,
  derivedPartition,
  derivedSent,
  derivedSentAt,
  derivedState,
  insertOnlyDefault,
  inStreamRows,
  inStreamRowsFrom,
  sentCondition,
  walBatchCtes,
  walBatchJoin,
  walBatchSetJoin,
} from './stream-sent-sql.ts';

/**
 * Every statement the operations tools run (reconcile, resend, trace, status, intervention, retention,
 * divert rules, alarms, metrics collection), in one place. `s` is the validated, quoted schema name; values
 * are always parameters. Time spans are milliseconds, multiplied by `interval '1 millisecond'`.
 * ORDER BY always names table-qualified columns: a bare name would sort by the `::text` output column of
 * the same name, and '10' < '9'.
 *
 * No statement reads `state = 1` or `sent_at` alone as "sent": in the outbox's insert-only mode (migration 21)
 * a row is inserted with state 1 and no `sent_at`, and is sent only once an `outbox_wal_batch` row lists it.
 * What a row's state and send are is derived by stream-sent-sql.ts, the one place that knows.
 */
export function operationsSql(s: string) {
  // A row as readers show it: a row still in the WAL stream is pending (0), one a batch records is sent when
  // and where the batch says. Needs `batchJoin` after `from ${s}.outbox o`.
  const outboxColumns = `o.seq_id::text, o.message_id, o.topic, o.msg_key, o.msg_type, o.trace_id, o.producer_id, o.key_seq::text,
    ${derivedState()} as state, o.attempts, o.last_error, o.created_at, o.modified_time, o.next_attempt_at, o.lease_owner,
    o.lease_until, ${derivedSentAt()} as sent_at, ${derivedPartition()} as sent_partition, ${derivedOffset()}::text as sent_offset,
    ${derivedState()} = 0 and o.state = 1 as in_stream`;
  const batchJoin = walBatchJoin(s, 'o');

  // Rows still in the WAL stream, for the counts of `status` (which the metrics collector runs every few
  // seconds), found cheaply: only the rows from a floor seq_id up are looked at, a range scan of the primary
  // key; a state-1 row is never found through a scan of all of them. `streamFloor` reads the floor first, once
  // per `status` round, and both counting statements get it as a parameter: computed inside the statement,
  // it was invisible to the planner, which read the whole outbox (in parallel) even when there was no floor
  // at all.
  //
  // Each slot of this outbox has its own floor, the lowest seq_id of its newest three batches (by end LSN,
  // its commit order; a part of a large transaction has none and is left out: a backward scan of the index
  // would put those first). The relay sends in commit order, so an unrecorded row of a slot below its floor is
  // one whose transaction committed after three batches of rows numbered after it (it ran longer than three
  // batches): it is missed until a batch records it (reconcile, trace and retention still see it). The floor
  // is the lowest of the slots': taken across all of them, it passed every row of a stalled shard (its relay
  // reads its slot but records nothing) as soon as another shard recorded three batches. This outbox's slots
  // are the shards' (wal_shard, whether the slot exists or not: a shard's rows wait for it either way) and any
  // other slot that exists now and has batch rows here (the single slot). A dropped slot's batches (a
  // shard-count change; the mode left and entered again) say nothing about a stream and would hold the floor
  // down for good. pg_replication_slots has a few rows (max_replication_slots); each is looked up in the
  // (slot, end_lsn) index: a scalar subquery ordered as the index is (an EXISTS became a hash semi-join over
  // every batch row, and without the ORDER BY the planner scanned the table for an early match), with the
  // slot name cast to the column's collation (with the name type's, no index on the column was used; the
  // statement then seq-scanned the batches per slot and was JIT-compiled: 350 ms instead of 0.4).
  //
  // A slot of this outbox without a batch of a whole commit yet (a shard created and never read, or one
  // holding parts of its first large transaction only) has floor 0: every state-1 row without `sent_at` is
  // read, as in the insert-only mode before its first batch. That count is the right one: its rows were
  // inserted for its stream at any seq_id since it was created, and nothing else bounds them. It costs a read
  // of the whole outbox for as long as that lasts (2-4 s for 2M listed rows here, below). With none of
  // this outbox's slots known (its single slot has no batch yet, or no slot exists now: every row inserted
  // since waits), the newest three batches of any slot give the floor, and no batch at all gives 0.
  //
  // Outside the insert-only mode (the state default is 0) there is no floor, and the statements read the
  // unsent rows' partial index only: an outbox that never had the mode (the polling relay's), or has left
  // it, is not scanned every few seconds. What that misses: rows inserted for a stream before the mode was
  // left other than by `--drop-slot` (which hands them to the polling path, which counts them).
  //
  // From a floor, the rows above it (a few thousand while the relays keep up) are anti-joined against the
  // seq_ids of the batches whose range reaches the floor (`inStreamRowsFrom`: 4-7 ms per statement at 1M
  // listed rows; one at a time, ~35 µs a row, it was 100-200 ms); with floor 0 (every row) all batches'
  // seq_ids are hashed (`inStreamRows`: 0.26 s per 200k rows, 2.2-4.5 s per 2M).
  type InStream = 'none' | 'from' | 'all';
  const inStream = (scope: InStream, floor: string) => (scope === 'all' ? inStreamRows(s, 'o') : inStreamRowsFrom(s, floor, 'o'));
  const batchFloor = (slot: string) => `(select min(t.seq_lo) from (
            select b.seq_lo from ${s}.outbox_wal_batch b where b.slot = ${slot} and b.end_lsn is not null
            order by b.end_lsn desc limit 3
          ) t)`;
  /** $1: stuck after this many ms; `from`: $2 the stream floor. */
  const outboxSummary = (scope: InStream) => `
      with unsent as (
        select o.state, o.created_at from ${s}.outbox o where o.state <> 1${
          scope === 'none'
            ? ''
            : `
        union all
        select 0::smallint, o.created_at from ${s}.outbox o where ${inStream(scope, '$2')}`
        }
      )
      select
        count(*) filter (where u.state = 0)::int as pending,
        count(*) filter (where u.state = 2)::int as failed,
        count(*) filter (where u.state = 3)::int as parked,
        count(*) filter (where u.state in (0, 2) and u.created_at < now() - $1 * interval '1 millisecond')::int as stuck,
        coalesce(extract(epoch from now() - min(u.created_at) filter (where u.state in (0, 2))) * 1000, 0)::float8 as oldest_ms
      from unsent u`;
  /** `from`: $1 the stream floor. */
  const unsentByTopic = (scope: InStream) => `
      with unsent as (
        select o.topic, o.state, o.last_error from ${s}.outbox o where o.state in (0, 2)${
          scope === 'none'
            ? ''
            : `
        union all
        select o.topic, 0::smallint, null::text from ${s}.outbox o where ${inStream(scope, '$1')}`
        }
      )
      select u.topic, count(*)::int as unsent,
        count(*) filter (where u.state = 2 and u.last_error like 'ZL_TOPIC_UNAVAILABLE:%')::int as topic_unavailable,
        max(u.last_error) filter (where u.state = 2 and u.last_error like 'ZL_TOPIC_UNAVAILABLE:%') as topic_error
      from unsent u group by u.topic order by u.topic`;

  return {
    // ---- reconcile ---------------------------------------------------------------------------------
    /**
     * Outbox rows committed in [$1, $2), optionally of topics $3, after the keyset ($4 created_at as this
     * statement printed it, $5 seq_id), $6 at a time. Served by outbox_created. created_at::text keeps the
     * microseconds that the rows of one transaction share; a JS Date cursor restarted every page there. The
     * page's batches are looked up for the page at once (`walBatchCtes`; reconcile reads whole windows); the
     * page keeps the columns shown, not the payloads.
     */
    outboxWindow: `
      with page as materialized (
        select o.seq_id, o.message_id, o.topic, o.msg_key, o.msg_type, o.trace_id, o.producer_id, o.key_seq, o.state, o.attempts,
          o.last_error, o.created_at, o.modified_time, o.next_attempt_at, o.lease_owner, o.lease_until, o.sent_at, o.sent_partition,
          o.sent_offset
        from ${s}.outbox o
        where o.created_at >= $1 and o.created_at < $2 and ($3::text[] is null or o.topic = any($3::text[]))
          and ($4::timestamptz is null or (o.created_at, o.seq_id) > ($4::timestamptz, $5::bigint))
        order by o.created_at, o.seq_id
        limit $6
      ),
      ${walBatchCtes(s, 'page')}
      select ${outboxColumns}, o.created_at::text as at_text from page o ${walBatchSetJoin('o')}
      order by o.created_at, o.seq_id`,

    /** Inbox rows of messages $1 (inbox_message_id). */
    inboxByMessageIds: `
      select consumer_group, idempotency_key, message_id, topic, msg_partition, msg_offset::text, processed_at
      from ${s}.inbox where message_id = any($1::text[])`,

    /**
     * Outbox rows committed in [$1, $2) of topic $3, state $4 (as derived: a row in the stream is pending) and
     * key $5 (null: any), in commit order, after the keyset ($6 created_at as this statement printed it, $7
     * seq_id), $8 at a time. Served by outbox_created; created_at::text round-trips its microseconds (rows of
     * one transaction share it), a JS Date would not.
     */
    outboxRows: `
      select ${outboxColumns}, o.created_at::text as at_text from ${s}.outbox o ${batchJoin}
      where o.created_at >= $1 and o.created_at < $2
        and ($3::text is null or o.topic = $3) and ($4::smallint is null or ${derivedState()} = $4) and ($5::text is null or o.msg_key = $5)
        and ($6::timestamptz is null or (o.created_at, o.seq_id) > ($6::timestamptz, $7::bigint))
      order by o.created_at, o.seq_id
      limit $8`,

    /**
     * Inbox rows processed in [$1, $2) of group $3 and topic $4 (null: any), newest first, before the keyset
     * ($5 processed_at as this statement printed it, $6 group, $7 key), $8 at a time. Served by
     * inbox_processed_at; processed_at::text round-trips its microseconds, a JS Date would not.
     */
    inboxRows: `
      select consumer_group, idempotency_key, message_id, topic, msg_partition, msg_offset::text, processed_at,
             processed_at::text as at_text
      from ${s}.inbox i
      where i.processed_at >= $1 and i.processed_at < $2
        and ($3::text is null or i.consumer_group = $3) and ($4::text is null or i.topic = $4)
        and ($5::timestamptz is null or (i.processed_at, i.consumer_group, i.idempotency_key) < ($5::timestamptz, $6::text, $7::text))
      order by i.processed_at desc, i.consumer_group desc, i.idempotency_key desc
      limit $8`,

    /** Dead letters of messages $1, open or resolved (dead_letter_message_id). */
    deadLettersByMessageIds: `
      select id::text, consumer_group, message_id, topic, msg_partition, msg_offset::text, status, error_code, error, attempts,
             created_at, resolved_at, resolved_by, replay_count
      from ${s}.dead_letter d where d.message_id = any($1::text[]) order by d.id`,

    /** Positions stored with the effects (P10) of groups $1. */
    storedOffsets: `
      select consumer_group, topic, msg_partition, next_offset::text from ${s}.consumer_offset where consumer_group = any($1::text[])`,

    /** `zeroloss groups delete`: the positions group $1 stored (P10) on topics $2. */
    deleteStoredOffsets: `
      delete from ${s}.consumer_offset where consumer_group = $1 and topic = any($2::text[])
      returning consumer_group, topic, msg_partition, next_offset::text`,

    /**
     * Ack-vs-state repair (P5): rows $1 not yet sent, whose record the broker holds at partition $2, offset $3,
     * written at $4 (epoch ms), become sent without a resend. Actor $5. A relay still holding the lease finds
     * the row sent and leaves it (its markSent and markFailed skip sent rows). A row a batch records is sent
     * already and is left alone; a row still in the WAL stream is not, and is marked here like a pending one
     * (its transition says 0, pending, as every reader showed it): the relay's batch recording it later
     * changes nothing on the row. Returns the ids.
     */
    markSentFromBroker: `
      with r as (select * from unnest($1::text[], $2::int[], $3::bigint[], $4::float8[]) as r(id, part, off, ts)),
      old as (
        select o.seq_id, (case when o.state = 1 then 0 else o.state end)::smallint as state
        from ${s}.outbox o join r on o.message_id = r.id
        where not ${sentCondition(s, 'o')} for update of o
      ),
      upd as (
        update ${s}.outbox o
        set state = 1, sent_at = to_timestamp(r.ts / 1000.0), modified_time = now(), lease_owner = null, lease_until = null,
            sent_partition = r.part, sent_offset = r.off
        from r, old where o.message_id = r.id and old.seq_id = o.seq_id
        returning o.message_id, old.state as from_state, o.attempts, r.part, r.off
      ),
      tr as (
        insert into ${s}.outbox_transition (message_id, from_state, to_state, attempt, actor)
        select message_id, from_state, 1, attempts, $5 from upd
      ),
      au as (
        insert into ${s}.operation_audit (actor, action, subject, message_id, reason, details)
        select $5, 'outbox.mark-sent', 'outbox:' || message_id, message_id, 'the broker holds the message (ack-vs-state repair)',
               jsonb_build_object('from_state', from_state, 'partition', part, 'offset', off::text)
        from upd
      )
      select message_id from upd`,

    /** $1 kind, $2 window from, $3 window to. Returns the run id. */
    runStart: `insert into ${s}.reconcile_run (kind, window_from, window_to) values ($1, $2, $3) returning id::text`,
    /** $1 run id, $2 verdict, $3 report, $4 the ids held for a person (O8), or null. */
    runFinish: `
      update ${s}.reconcile_run set finished_at = now(), verdict = $2, report = $3::jsonb,
        held_ids = $4::text[], status = case when $4::text[] is null then null else 'held' end
      where id = $1`,

    // ---- escalation (O8) ---------------------------------------------------------------------------
    /** Those of ids $1 a held run holds. Held runs are few (each is an incident); a hash join keeps it linear. */
    heldIds: `
      select h.id from (select distinct unnest(r.held_ids) as id from ${s}.reconcile_run r where r.status = 'held') h
      join unnest($1::text[]) as x(id) on x.id = h.id`,
    /** Held runs, oldest first, at most $1. */
    heldRuns: `
      select id::text, kind, window_from, window_to, finished_at, verdict, cardinality(held_ids) as held
      from ${s}.reconcile_run where status = 'held' order by id limit $1`,
    /**
     * Run $1 from held to approved by actor $2 for reason $3, with an audit row; returns its ids. The status
     * test in the update's where clause is what makes an approval happen once: a concurrent second one
     * waits on the row lock, then finds it approved and returns nothing.
     */
    approveHeld: `
      with run as (
        update ${s}.reconcile_run set status = 'approved', approved_at = now(), approved_by = $2,
          approval = jsonb_build_object('reason', $3::text)
        where id = $1::bigint and status = 'held'
        returning id, held_ids
      ),
      au as (
        insert into ${s}.operation_audit (actor, action, subject, reason, details)
        select $2, 'reconcile.approve', 'reconcile_run:' || id, $3, jsonb_build_object('ids', cardinality(held_ids)) from run
      )
      select held_ids from run`,
    runHold: `select status, approved_by, approved_at from ${s}.reconcile_run where id = $1::bigint`,
    /** $1 run id, $2 the approval's outcome, merged into its record. */
    approvalOutcome: `update ${s}.reconcile_run set approval = approval || $2::jsonb where id = $1::bigint`,
    /** Nothing was re-published: the run is held again. */
    approvalUndo: `
      update ${s}.reconcile_run set status = 'held', approved_at = null, approved_by = null, approval = null
      where id = $1::bigint and status = 'approved'`,

    // ---- resend (O5) -------------------------------------------------------------------------------
    /**
     * Rows to resend: committed in [$1, $2) of topics $3, or ids $4; in seq order after $5, $6 at a time. Their
     * state as derived: a row a batch records is sent (resendable), one still in the stream pending (the
     * stream sends it).
     */
    resendRows: `
      select o.seq_id::text, o.message_id, o.topic, o.msg_key, o.headers, o.payload, ${derivedState()} as state
      from ${s}.outbox o ${batchJoin}
      where (($4::text[] is null and o.created_at >= $1 and o.created_at < $2) or o.message_id = any($4::text[]))
        and ($3::text[] is null or o.topic = any($3::text[])) and o.seq_id > $5
      order by o.seq_id
      limit $6`,

    /**
     * Records resends of sent rows: new position $2/$3 of messages $1, a 1→1 transition by actor $4 and an
     * audit row with reason $5. Returns the ids. A row still in the WAL stream was never sent and is not
     * recorded. A row a batch records gets its send recorded on the row from now on, keeping the batch's
     * position when the publisher named none.
     */
    recordResent: `
      with r as (select * from unnest($1::text[], $2::int[], $3::bigint[]) as r(id, part, off)),
      cur as (
        select o.seq_id, ${derivedPartition()} as part, ${derivedOffset()} as off
        from ${s}.outbox o join r on o.message_id = r.id ${batchJoin}
        where ${derivedSent()}
      ),
      upd as (
        update ${s}.outbox o
        set sent_partition = coalesce(r.part, cur.part), sent_offset = coalesce(r.off, cur.off), sent_at = now(),
            modified_time = now()
        from r, cur where o.message_id = r.id and o.seq_id = cur.seq_id and o.state = 1
        returning o.message_id, o.attempts, r.part, r.off
      ),
      tr as (
        insert into ${s}.outbox_transition (message_id, from_state, to_state, attempt, actor)
        select message_id, 1, 1, attempts, $4 from upd
      ),
      au as (
        insert into ${s}.operation_audit (actor, action, subject, message_id, reason, details)
        select $4, 'outbox.resend', 'outbox:' || message_id, message_id, $5, jsonb_build_object('partition', part, 'offset', off::text)
        from upd
      )
      select message_id from upd`,

    // ---- trace (O3) --------------------------------------------------------------------------------
    outboxRow: `select ${outboxColumns} from ${s}.outbox o ${batchJoin} where o.message_id = $1`,
    // A first-attempt send recorded by a polling relay round (or the WAL relay's row mode) is that round's one
    // batch row (migration 016), found through the outbox row's sent_batch; every other transition is the
    // message's own row. In the insert-only mode the WAL relay touches no outbox row: its batch's transition
    // row (no message_id, the batch's seq_ids) is written by the statement that writes the outbox_wal_batch
    // row listing the row, so both carry that transaction's now(): found from the batch (GiST on its range)
    // through the batch transitions' index on `at`, and the seq_id in its list.
    transitions: `
      select from_state, to_state, attempt, error, actor, at from (
        select t.id, t.from_state, t.to_state, t.attempt, t.error, t.actor, t.at from ${s}.outbox_transition t where t.message_id = $1
        union all
        select t.id, t.from_state, t.to_state, t.attempt, t.error, t.actor, t.at
        from ${s}.outbox o join ${s}.outbox_transition t on t.id = o.sent_batch where o.message_id = $1
        union
        select t.id, t.from_state, t.to_state, t.attempt, t.error, t.actor, t.at
        from ${s}.outbox o
        join ${s}.outbox_wal_batch b on int8range(b.seq_lo, b.seq_hi, '[]') @> o.seq_id and o.seq_id = any(b.seq_ids)
        join ${s}.outbox_transition t on t.message_id is null and t.at = b.at and o.seq_id = any(t.seq_ids)
        where o.message_id = $1 and o.state = 1
      ) x order by id`,
    auditForMessage: `
      select a.id::text, a.at, a.actor, a.action, a.subject, a.reason, a.details from ${s}.operation_audit a
      where a.message_id = $1 order by a.id`,

    // ---- status (O1, O4) ---------------------------------------------------------------------------
    /**
     * Whether the outbox is in the insert-only mode, and the seq_id from which `status` looks for rows still in
     * the WAL stream (`lo`, as text; null outside the mode: no row is looked for). Catalog reads and a few index
     * probes (above).
     */
    streamFloor: `
      with slots as (
        select r.slot_name::text collate "default" as slot, false as shard from pg_replication_slots r
        where r.database = current_database()
        union all
        select w.slot, true from ${s}.wal_shard w
      ),
      own as (
        select distinct x.slot from slots x
        where x.shard or coalesce((select true from ${s}.outbox_wal_batch b where b.slot = x.slot order by b.end_lsn limit 1), false)
      ),
      floors as (select coalesce(${batchFloor('o.slot')}, 0) as lo from own o),
      mode as (select ${insertOnlyDefault(s)} as insert_only)
      select m.insert_only,
        (case
          when not m.insert_only then null
          when exists (select from floors) then (select min(f.lo) from floors f)
          else coalesce((select min(t.seq_lo) from (select w.seq_lo from ${s}.outbox_wal_batch w order by w.id desc limit 3) t), 0)
        end)::text as lo
      from mode m`,
    /**
     * Unsent rows by state; $1: rows unsent for longer than this many ms are stuck. Served by outbox_unsent.
     * With the rows still in the WAL stream counted as pending too: `outboxSummaryFrom` those from $2 up (the
     * primary key; `streamFloor`'s `lo`), `outboxSummaryAll` all of them (`lo` 0).
     */
    outboxSummary: outboxSummary('none'),
    outboxSummaryFrom: outboxSummary('from'),
    outboxSummaryAll: outboxSummary('all'),

    /**
     * Unsent rows per topic, and how many of them the relay found their topic missing or refused for. With the
     * rows still in the WAL stream: `unsentByTopicFrom` from $1 up (`streamFloor`'s `lo`), `unsentByTopicAll`.
     */
    unsentByTopic: unsentByTopic('none'),
    unsentByTopicFrom: unsentByTopic('from'),
    unsentByTopicAll: unsentByTopic('all'),

    /** Parked rows, oldest first, optionally of topic $1, at most $2. */
    parkedRows: `
      select ${outboxColumns} from ${s}.outbox o ${batchJoin}
      where o.state = 3 and ($1::text is null or o.topic = $1)
      order by o.seq_id limit $2`,

    /** Effects applied per group and partition in the last $1 ms, of groups $2 (null: all). */
    throughput: `
      select consumer_group, topic, msg_partition, count(*)::int as applied
      from ${s}.inbox
      where processed_at > now() - $1 * interval '1 millisecond' and ($2::text[] is null or consumer_group = any($2::text[]))
      group by 1, 2, 3`,

    /**
     * Groups known to this schema: any inbox row (a skip scan over the primary key, one index probe per group,
     * however big the inbox), stored offsets, or open dead letters.
     */
    knownGroups: `
      with recursive g as (
        (select i.consumer_group from ${s}.inbox i order by i.consumer_group limit 1)
        union all
        select (select i.consumer_group from ${s}.inbox i where i.consumer_group > g.consumer_group order by i.consumer_group limit 1)
        from g where g.consumer_group is not null
      )
      select consumer_group from g where consumer_group is not null
      union select consumer_group from ${s}.consumer_offset
      union select consumer_group from ${s}.dead_letter where status = 'dead'`,

    openDeadLetters: `select consumer_group, count(*)::int as open from ${s}.dead_letter where status = 'dead' group by 1`,

    /** Sequence alarms of the last $1 ms, newest first, at most $2. */
    recentAlarms: `
      select id::text, at, consumer_group, kind, topic, msg_partition, producer_id, msg_key, expected::text, received::text, missing::text
      from ${s}.sequence_alarm a where a.at > now() - $1 * interval '1 millisecond'
      order by a.id desc limit $2`,

    lastRuns: `
      select id::text, kind, window_from, window_to, started_at, finished_at, verdict
      from ${s}.reconcile_run r where r.finished_at is not null order by r.id desc limit $1`,

    // ---- intervention (O7) -------------------------------------------------------------------------
    /**
     * Parked rows $1 back to pending with attempts 0, due now; transition 3→0 and an audit row by actor $2
     * for reason $3. Returns the ids released.
     */
    release: `
      with old as (
        select seq_id, attempts, last_error from ${s}.outbox where message_id = any($1::text[]) and state = 3 for update
      ),
      upd as (
        update ${s}.outbox o
        set state = 0, attempts = 0, next_attempt_at = now(), modified_time = now(), lease_owner = null, lease_until = null
        from old where o.seq_id = old.seq_id
        returning o.message_id, old.attempts, old.last_error
      ),
      tr as (
        insert into ${s}.outbox_transition (message_id, from_state, to_state, attempt, actor)
        select message_id, 3, 0, 0, $2 from upd
      ),
      au as (
        insert into ${s}.operation_audit (actor, action, subject, message_id, reason, details)
        select $2, 'outbox.release', 'outbox:' || message_id, message_id, $3,
               jsonb_build_object('attempts', attempts, 'last_error', last_error)
        from upd
      )
      select message_id from upd`,

    /**
     * Deletes parked rows $1 (a discarded row must stop holding its key back) and keeps their whole content in
     * the audit row, by actor $2 for reason $3. Returns the ids discarded.
     */
    discard: `
      with del as (delete from ${s}.outbox where message_id = any($1::text[]) and state = 3 returning *),
      au as (
        insert into ${s}.operation_audit (actor, action, subject, message_id, reason, details)
        select $2, 'outbox.discard', 'outbox:' || message_id, message_id, $3,
               (to_jsonb(del) - 'payload') || jsonb_build_object('payload_base64', encode(payload, 'base64'), 'seq_id', seq_id::text)
        from del
      )
      select message_id from del`,

    /** One audit row: $1 actor, $2 action, $3 subject, $4 message id, $5 reason, $6 details. */
    audit: `insert into ${s}.operation_audit (actor, action, subject, message_id, reason, details) values ($1, $2, $3, $4, $5, $6::jsonb)`,

    /** Audit rows of the last $1 ms, newest first, at most $2. */
    recentAudit: `
      select a.id::text, a.at, a.actor, a.action, a.subject, a.message_id, a.reason from ${s}.operation_audit a
      where a.at > now() - $1 * interval '1 millisecond' order by a.id desc limit $2`,

    notify: `select pg_notify($1, '')`,

    // ---- retention ---------------------------------------------------------------------------------
    /**
     * Up to $2 sent rows committed and sent more than $1 ms ago, with their transitions and delivery receipts.
     * Unsent rows (pending, failed, parked, still in the WAL stream) are never touched: a row without
     * `sent_at` goes only when a batch older than $1 records it. Rows a concurrent statement holds are
     * skipped, not waited for. A receipt that arrives after its row went is not stored (the insert joins the
     * outbox). Counts the outbox rows only (the transitions and batch rows that go with them are their record).
     * Old rows still in the stream (a relay long down) are read past again by each statement, in created_at
     * order.
     */
    deleteSentOutbox: `
      with doomed as (
        select o.seq_id, o.message_id from ${s}.outbox o
        where o.state = 1 and o.created_at < now() - $1 * interval '1 millisecond'
          and (o.sent_at < now() - $1 * interval '1 millisecond' or (o.sent_at is null and exists (
            select 1 from ${s}.outbox_wal_batch b
            where int8range(b.seq_lo, b.seq_hi, '[]') @> o.seq_id and o.seq_id = any(b.seq_ids)
              and b.at < now() - $1 * interval '1 millisecond'
          )))
        order by o.created_at limit $2 for update of o skip locked
      ),
      tr as (delete from ${s}.outbox_transition t using doomed d where t.message_id = d.message_id),
      -- a round's batch row (migration 016) goes once past the age: its rows were sent when it was written
      bt as (
        delete from ${s}.outbox_transition t where t.id in (
          select id from ${s}.outbox_transition where message_id is null and at < now() - $1 * interval '1 millisecond'
          order by at limit $2
        )
      ),
      -- A WAL batch row goes once past the age and no row it lists needs it any more (state 1 without sent_at,
      -- and not going in this statement): earlier, such a row would read as unsent. A batch is written after
      -- the rows it lists, so the statement deleting the last of them can take it too. "not in" over doomed
      -- runs as a hashed subplan (a nested loop over the CTE per listed row otherwise).
      wb as (
        delete from ${s}.outbox_wal_batch w where w.id in (
          select b.id from ${s}.outbox_wal_batch b
          where b.at < now() - $1 * interval '1 millisecond' and not exists (
            select 1 from ${s}.outbox o
            where o.seq_id = any(b.seq_ids) and o.state = 1 and o.sent_at is null
              and o.seq_id not in (select d.seq_id from doomed d)
          )
          order by b.at limit $2 for update skip locked
        )
      ),
      rc as (delete from ${s}.delivery_receipt r using doomed d where r.message_id = d.message_id),
      del as (delete from ${s}.outbox o using doomed d where o.seq_id = d.seq_id returning 1)
      select count(*)::int as deleted from del`,

    deleteInbox: `
      with doomed as (
        select consumer_group, idempotency_key from ${s}.inbox
        where processed_at < now() - $1 * interval '1 millisecond' limit $2 for update skip locked
      ),
      del as (
        delete from ${s}.inbox i using doomed d
        where i.consumer_group = d.consumer_group and i.idempotency_key = d.idempotency_key returning 1
      )
      select count(*)::int as deleted from del`,

    /** Only dead letters a person resolved (replayed or discarded); open ones stay until someone acts. */
    deleteResolvedDeadLetters: `
      with doomed as (
        select id from ${s}.dead_letter where status <> 'dead' and resolved_at < now() - $1 * interval '1 millisecond'
        limit $2 for update skip locked
      ),
      del as (delete from ${s}.dead_letter d using doomed x where d.id = x.id returning 1)
      select count(*)::int as deleted from del`,

    deleteRuns: `
      with doomed as (
        -- A held run waits for a person however old it is.
        select id from ${s}.reconcile_run
        where started_at < now() - $1 * interval '1 millisecond' and status is distinct from 'held' limit $2
      ),
      del as (delete from ${s}.reconcile_run r using doomed x where r.id = x.id returning 1)
      select count(*)::int as deleted from del`,

    deleteAlarms: `
      with doomed as (select id from ${s}.sequence_alarm where at < now() - $1 * interval '1 millisecond' limit $2),
      del as (delete from ${s}.sequence_alarm a using doomed x where a.id = x.id returning 1)
      select count(*)::int as deleted from del`,

    // ---- divert rules (O4) -------------------------------------------------------------------------
    divertRules: `select topic, msg_type, target_topic, created_at, created_by, reason from ${s}.topic_divert order by topic, msg_type`,
    /** $1 topic, $2 types, $3 target, $4 actor, $5 reason. */
    divertSet: `
      insert into ${s}.topic_divert (topic, msg_type, target_topic, created_by, reason)
      select $1, t, $3, $4, $5 from unnest($2::text[]) as t
      on conflict (topic, msg_type) do update
      set target_topic = excluded.target_topic, created_by = excluded.created_by, reason = excluded.reason, created_at = now()`,
    divertRemove: `delete from ${s}.topic_divert where topic = $1 and msg_type = any($2::text[]) returning msg_type`,
    /**
     * Moves unsent, unleased rows of topic $1 and types $2 ('*' = all) to topic $3, so the backlog still in
     * the outbox follows the rule too. Returns how many moved. Rows still in the WAL stream (state 1 without
     * `sent_at`) are not moved: the stream sends them as they were inserted, whatever the row says now.
     */
    divertUnsent: `
      with moved as (
        update ${s}.outbox set topic = $3, modified_time = now()
        where topic = $1 and ('*' = any($2::text[]) or msg_type = any($2::text[])) and state in (0, 2)
          and (lease_until is null or lease_until < now())
        returning 1
      )
      select count(*)::int as moved from moved`,

    // ---- alarms and metrics collection -------------------------------------------------------------
    recordAlarm: `
      insert into ${s}.sequence_alarm (consumer_group, kind, topic, msg_partition, producer_id, msg_key, expected, received, missing)
      values ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,

    /**
     * The transactions writing the tables the metrics collector counts (TableWriters, commit-horizon.ts): those
     * holding or awaiting the table's ROW EXCLUSIVE lock, by virtual transaction id. An insert takes it when the
     * statement starts, before the row's sequence value or anything else, and keeps it until the transaction
     * ends (pg_locks lists each mode a transaction holds, so one holding a stronger lock too is still seen); a
     * subtransaction's locks are its top transaction's. Only that mode: a VACUUM (autovacuum of the inbox runs
     * for long), SELECT FOR UPDATE or CREATE INDEX CONCURRENTLY writes no row, and counted as a writer it held
     * every group's applied count back for as long as it ran. One row, whatever is locked. pg_locks lists
     * every backend's locks: a few hundred here, 4 ms.
     */
    tableWriters: `
      select now() as now,
        coalesce(array_agg(l.virtualtransaction) filter (where l.relation = '${s}.outbox_transition'::regclass), '{}') as transition,
        coalesce(array_agg(l.virtualtransaction) filter (where l.relation = '${s}.sequence_alarm'::regclass), '{}') as alarm,
        coalesce(array_agg(l.virtualtransaction) filter (where l.relation = '${s}.inbox'::regclass), '{}') as inbox
      from pg_locks l
      where l.locktype = 'relation' and l.mode = 'RowExclusiveLock'
        and l.database = (select d.oid from pg_database d where d.datname = current_database())
        and l.relation in ('${s}.outbox_transition'::regclass, '${s}.sequence_alarm'::regclass, '${s}.inbox'::regclass)`,
    maxTransitionId: `select coalesce(max(id), 0)::text as id from ${s}.outbox_transition`,
    maxAlarmId: `select coalesce(max(id), 0)::text as id from ${s}.sequence_alarm`,

    /**
     * Transitions after id $1 (the first $2) and with ids $3 (ids below the cursor still unfilled,
     * SequenceCursor: 5,000 at most per statement), with the seconds from the row's commit to the transition
     * (null when the row is gone). Both parts read the primary key: the ids as one list, whose length the
     * planner knows (5,000 ids at 1M rows: 27 ms, no JIT). Without ids the second part is not planned at all:
     * with an empty list the planner chose the batch rows' partial index and filtered all of it. A batch row
     * (a polling relay round's first-attempt sends, migration 016; a WAL batch's) comes back once per row it
     * lists, all with its id, so a page may hold more than $2 rows.
     */
    transitionsSince: `
      with t as (
        (select * from ${s}.outbox_transition where id > $1 order by id limit $2)
        union all
        select * from ${s}.outbox_transition where id = any($3::bigint[]) and cardinality($3::bigint[]) > 0
      )
      select id::text, from_state, to_state, attempt, actor, since_commit_s from (
        select t.id, t.from_state, t.to_state, t.attempt, t.actor,
               extract(epoch from t.at - o.created_at)::float8 as since_commit_s
        from t left join ${s}.outbox o on o.message_id = t.message_id
        where t.message_id is not null
        union all
        select t.id, t.from_state, t.to_state, t.attempt, t.actor,
               extract(epoch from t.at - o.created_at)::float8
        from t cross join lateral unnest(t.seq_ids) as b(seq_id) left join ${s}.outbox o on o.seq_id = b.seq_id
        where t.message_id is null
      ) x order by x.id`,

    /**
     * Effects applied in ($1, $2], with the seconds from the message's commit in this outbox (null when the
     * message came from elsewhere). processed_at is the effect transaction's start: the collector asks only for
     * a window that no transaction still writing the inbox can write into (CommitHorizon).
     */
    appliedBetween: `
      select i.consumer_group, i.processed_at, extract(epoch from i.processed_at - o.created_at)::float8 as end_to_end_s
      from ${s}.inbox i left join ${s}.outbox o on o.message_id = i.message_id
      where i.processed_at > $1 and i.processed_at <= $2`,

    /** Alarms after id $1 (the first $2) and with ids $3 (as `transitionsSince`). */
    alarmsSince: `
      select a.id::text, a.consumer_group, a.kind, a.topic from (
        (select * from ${s}.sequence_alarm where id > $1 order by id limit $2)
        union all
        select * from ${s}.sequence_alarm where id = any($3::bigint[]) and cardinality($3::bigint[]) > 0
      ) a order by a.id`,
  };
}

export type OperationsSql = ReturnType<typeof operationsSql>;
