/**
 * Statements for a state-column source: a business table (like the lottery's user_strategy_export) that
 * carries its own send-state column. Relay bookkeeping (lease, attempts, encoded bytes) lives in
 * `<zeroloss schema>.source_row`, so the business table needs only the state and modified-time columns.
 * Every name here is validated and quoted by the caller; values are parameters.
 */
export interface StateColumnNames {
  z: string; // zeroloss schema
  table: string; // schema-qualified business table
  id: string;
  state: string;
  modified: string;
  /** The creation-time column, when declared: resend's time window is on it (else on the modified time). */
  created?: string | undefined;
  key: string | undefined;
  parkedState: number | undefined;
  holdKeyOnParked: boolean;
}

export function stateColumnSql(n: StateColumnNames) {
  // Rows that hold their key's later rows back: every unsent one, or with holdKeyOnParked false the pending
  // and failed ones but not a parked one. With parkedState null a parked row keeps state 2, so it is told
  // apart by its bookkeeping row (it held its key whatever holdKeyOnParked said).
  const blocking = n.holdKeyOnParked
    ? `p.${n.state} <> 1`
    : `p.${n.state} in (0, 2) and not exists (
        select 1 from ${n.z}.source_row pk where pk.source = $1 and pk.row_id = p.${n.id}::text and pk.parked
      )`;
  const keyOrder = n.key
    ? `where not exists (
        select 1 from ${n.table} p
        where p.${n.key} = c.k and p.${n.id} < c.row_id and ${blocking}
          and not exists (select 1 from cand c2 where c2.row_id = p.${n.id})
          -- a row a person discarded no longer holds its key back
          and not exists (
            select 1 from ${n.z}.source_row d where d.source = $1 and d.row_id = p.${n.id}::text and d.discarded_at is not null
          )
      )`
    : '';

  const free = `(r.row_id is null or (not r.parked and (r.lease_until is null or r.lease_until < now()) and r.next_attempt_at <= now()))`;
  // A key with an unsent row that cannot go now: parked, waiting out its retry delay, or leased (not discarded).
  // Without a key column nothing holds a row back.
  const notHeld = n.key
    ? `not exists (
        select 1 from ${n.table} p join ${n.z}.source_row h on h.source = $1 and h.row_id = p.${n.id}::text
        where p.${n.key} = b.${n.key} and ${blocking} and h.discarded_at is null
          and (h.parked or h.next_attempt_at > now() or h.lease_until >= now())
      )`
    : 'true';

  // A claim is two statements in one transaction: `lock` takes the candidates' row locks, then `claim`
  // decides under those locks. The lease lives in source_row, not in the business row that is locked, so
  // Postgres does not recheck it when a lock is granted: a statement whose snapshot predates another
  // claimer's committed claim still sees that row as free. In one statement such a row counted towards
  // the key-order check, so the next row of its key was claimed while the other claimer held the earlier
  // one, and a failed send or a dead relay let the later row reach the topic first. `claim` runs on a
  // snapshot taken after every lock is held, i.e. after any claimer that held one of these rows committed.
  // $1 source, $2 limit
  const lockOf = (pastHeldKeys: boolean) => `
    select b.${n.id} as row_id from ${n.table} b
    left join ${n.z}.source_row r on r.source = $1 and r.row_id = b.${n.id}::text
    where b.${n.state} in (0, 2) and ${free} ${pastHeldKeys ? `and ${notHeld}` : ''}
    order by b.${n.id}
    limit $2
    for update of b skip locked`;
  const lock = lockOf(false);
  // The window of the oldest free rows may be all rows of keys held back by an earlier row (parked, in its
  // retry delay, or under a live lease): the claim then finds nothing for any key as long as the hold lasts.
  // After such a claim the source locks again, leaving those keys out (outbox-sql.ts, `claimPastHeldKeys`).
  const lockPastHeldKeys = lockOf(true);

  // $1 source, $2 owner, $3 ids locked by `lock` (in the id column's own type), $4 lease ms
  // `zl_prev_lease_until_ms`: recording an outcome (sent, failed, released, discarded) clears the lease, so a
  // lease still set on a claimable row is an earlier claim that recorded nothing: its holder died or hung,
  // perhaps after the broker acknowledged the send, and the relay asks the broker before sending it again.
  // The upsert cannot return the value it replaced, so `cand` reads it; a lease taken after this snapshot
  // makes the upsert refuse the row (the claim then rolls back), and one cleared after it only costs a check.
  const claim = `
    with cand as (
      select b.${n.id} as row_id${n.key ? `, b.${n.key} as k` : ''}, r.lease_until as prev_lease_until from ${n.table} b
      left join ${n.z}.source_row r on r.source = $1 and r.row_id = b.${n.id}::text
      where b.${n.id} = any($3) and b.${n.state} in (0, 2) and ${free}
    ), ok as (
      select c.row_id from cand c ${keyOrder}
    ), up as (
      insert into ${n.z}.source_row (source, row_id, attempts, lease_owner, lease_until)
      select $1, row_id::text, 1, $2, now() + $4 * interval '1 millisecond' from ok
      -- bookkeeping rows are locked in row_id order, so concurrent claimers cannot deadlock on them
      order by row_id::text
      on conflict (source, row_id) do update
        set attempts = ${n.z}.source_row.attempts + 1, lease_owner = excluded.lease_owner, lease_until = excluded.lease_until
        -- ON CONFLICT sees the latest version: a row whose lease changed after this snapshot is not claimed.
        where not ${n.z}.source_row.parked
          and (${n.z}.source_row.lease_until is null or ${n.z}.source_row.lease_until < now())
          and ${n.z}.source_row.next_attempt_at <= now()
      returning row_id, attempts, message_id, headers, payload, topic, msg_key
    )
    select to_jsonb(b) as row, up.row_id as zl_ref, up.attempts as zl_attempts, up.message_id as zl_message_id,
           up.headers as zl_headers, up.payload as zl_payload, up.topic as zl_topic, up.msg_key as zl_key, b.${n.state} as zl_state,
           (extract(epoch from c.prev_lease_until) * 1000)::float8 as zl_prev_lease_until_ms,
           -- ok rows the upsert refused (changed after this snapshot: a lease holder releasing a row whose
           -- lease had expired); the caller then rolls the claim back rather than risk a later row of their key
           (select count(*) from ok) - (select count(*) from up) as zl_refused
    from up join ${n.table} b on b.${n.id}::text = up.row_id join cand c on c.row_id = b.${n.id}
    -- The relay publishes rows in the order returned. Without this a hash join returns them in the table's
    -- physical order, which concurrent inserts leave different from id order: one key's rows went out of order.
    order by b.${n.id}`;

  // Runs in the claim's transaction, which holds every row named here (business and bookkeeping), so the
  // rows still without a message are exactly the ones this claim builds. Each message gets, in one go:
  // - its key's next numbers in the per-(producer, key) sequence shared with the outbox (outbox_key_seq),
  //   in claim order, which is id order; a key's earlier rows were built at earlier claims (a later row is
  //   claimed only once they are sent, or together with them), so the numbers follow the key's id order.
  //   The bump is rolled back with the claim, so the sequence stays gapless. Keys are bumped in key order,
  //   so two claims cannot deadlock on them.
  // - the topic after a divert rule (O4) for its topic and type, or for all its types ('*'), as the
  //   outbox's enqueue applies them.
  // $1 source, $2 refs (in claim order), $3 message ids, $4 headers (json text), $5 payloads, $6 topics,
  // $7 keys, $8 types, $9 producer id. Returns each built row's topic, sequence and headers.
  const storeEncoded = `
    with e as (
      select * from unnest($2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::text[], $8::text[])
        with ordinality as e(ref, mid, h, p, topic, k, typ, n)
    ), fresh as (
      select e.* from e join ${n.z}.source_row r on r.source = $1 and r.row_id = e.ref where r.message_id is null
    ), counts as (
      select k, count(*) as c from fresh group by k
    ), seq as (
      insert into ${n.z}.outbox_key_seq (producer_id, msg_key, seq)
      select $9, k, c from counts order by k
      on conflict (producer_id, msg_key) do update set seq = ${n.z}.outbox_key_seq.seq + excluded.seq
      returning msg_key, seq
    ), numbered as (
      select f.ref, f.mid, f.h, f.p, f.k,
             s.seq - c.c + row_number() over (partition by f.k order by f.n) as key_seq,
             coalesce((
               select dr.target_topic from ${n.z}.topic_divert dr
               where dr.topic = f.topic and dr.msg_type in (f.typ, '*') order by (dr.msg_type = '*') limit 1
             ), f.topic) as topic
      from fresh f join counts c on c.k = f.k join seq s on s.msg_key = f.k
    )
    update ${n.z}.source_row r
    set message_id = x.mid, headers = x.h::jsonb || jsonb_build_object('zl-seq', x.key_seq::text), payload = x.p,
        topic = x.topic, msg_key = x.k, key_seq = x.key_seq
    from numbered x
    where r.source = $1 and r.row_id = x.ref and r.message_id is null
    returning r.row_id, r.topic, r.headers`;

  // $1 source, $2 refs, $3 partitions, $4 offsets, $5 owner
  const markSent = `
    with r as (select * from unnest($2::text[], $3::int[], $4::bigint[]) as r(ref, part, off)),
    biz as (
      update ${n.table} b set ${n.state} = 1, ${n.modified} = now()
      from r where b.${n.id}::text = r.ref and b.${n.state} <> 1
      returning b.${n.id}::text as ref
    ),
    book as (
      update ${n.z}.source_row s set lease_owner = null, lease_until = null, sent_partition = r.part, sent_offset = r.off, last_error = null
      from r where s.source = $1 and s.row_id = r.ref
      returning s.message_id, s.attempts, s.row_id
    )
    insert into ${n.z}.outbox_transition (message_id, from_state, to_state, attempt, actor)
    select book.message_id, case when book.attempts > 1 then 2 else 0 end, 1, book.attempts, $5
    from book join biz on biz.ref = book.row_id`;

  // $1 source, $2 refs, $3 to_state, $4 errors, $5 delays, $6 charge, $7 owner, $8 keep (release: untouched)
  const markFailed = `
    with r as (
      select * from unnest($2::text[], $3::smallint[], $4::text[], $5::double precision[], $6::boolean[], $8::boolean[])
        as r(ref, to_state, err, delay_ms, charge, keep)
    ),
    book as (
      update ${n.z}.source_row s
      set lease_owner = null, lease_until = null, last_error = coalesce(r.err, s.last_error),
          next_attempt_at = now() + r.delay_ms * interval '1 millisecond',
          parked = not r.keep and r.to_state = 3,
          attempts = case when r.charge then s.attempts else s.attempts - 1 end
      from r where s.source = $1 and s.row_id = r.ref and s.lease_owner = $7
      returning s.row_id, s.message_id, s.attempts, r.to_state, r.err, r.keep
    ),
    biz as (
      update ${n.table} b
      set ${n.state} = case when book.to_state = 3 then ${n.parkedState ?? 2} else 2 end, ${n.modified} = now()
      from book where b.${n.id}::text = book.row_id and not book.keep and b.${n.state} <> 1
      returning b.${n.id}::text as ref
    ),
    tr as (
      -- A row parked because its mapping failed has no message id yet: it is named '<source>:<row id>', as
      -- parked list names it. (A null here failed the whole statement, so the claim that found such a row
      -- threw and its batch was never sent, again at every lease expiry.)
      insert into ${n.z}.outbox_transition (message_id, from_state, to_state, attempt, error, actor)
      select coalesce(book.message_id, $1 || ':' || book.row_id), 0, book.to_state, book.attempts, book.err, $7 from book where not book.keep
    )
    select message_id, to_state from book where not keep`;

  // $1 source, $2 ms after which an unsent row (by its creation time, else its modified time) is stuck
  const backlog = `
    select
      count(*) filter (where b.${n.state} = 0 and not coalesce(r.parked, false))::int as pending,
      count(*) filter (
        where b.${n.state} in (0, 2) and not coalesce(r.parked, false) and b.${n.created ?? n.modified} < now() - $2 * interval '1 millisecond'
      )::int as stuck,
      count(*) filter (where b.${n.state} = 2 and not coalesce(r.parked, false))::int as failed,
      count(*) filter (where coalesce(r.parked, false) or b.${n.state} = ${n.parkedState ?? -1})::int as parked,
      coalesce(extract(epoch from now() - min(b.${n.modified}) filter (where not coalesce(r.parked, false))) * 1000, 0)::float8 as oldest_ms,
      (extract(epoch from min(coalesce(r.next_attempt_at, now())) filter (where not coalesce(r.parked, false)) - now()) * 1000)::float8 as next_due_ms
    from ${n.table} b
    left join ${n.z}.source_row r on r.source = $1 and r.row_id = b.${n.id}::text
    where b.${n.state} <> 1 and r.discarded_at is null`;

  // Parked rows: the relay gave up on them (source_row.parked) and no person discarded them yet.
  const parkedWhere = `r.source = $1 and r.parked and r.discarded_at is null`;
  const view = `r.row_id, r.message_id, r.attempts, r.last_error, r.headers ->> 'zl-type' as type,
      b.${n.modified} as modified_at, ${n.key ? `b.${n.key}::text` : 'null::text'} as key, b.${n.state} as state`;

  // $1 source, $2 limit
  const parkedRows = `
    select ${view}
    from ${n.z}.source_row r join ${n.table} b on b.${n.id}::text = r.row_id
    where ${parkedWhere}
    order by b.${n.id}
    limit $2`;

  // Rows are named by message id, or by '<source>:<row id>' for a row parked before it could be encoded.
  const target = `
    select r.row_id from ${n.z}.source_row r
    where ${parkedWhere} and (r.message_id = any($2::text[]) or ($1 || ':' || r.row_id) = any($2::text[]))
    order by r.row_id
    for update`;

  // $1 source, $2 ids, $3 actor, $4 reason. Back to pending with attempts 0 (a full set of attempts), due
  // now; the business row's state goes back to 0 so the source's own readers see it pending again.
  const release = `
    with t as (${target}),
    book as (
      update ${n.z}.source_row s set parked = false, attempts = 0, next_attempt_at = now(), lease_owner = null, lease_until = null
      from t where s.source = $1 and s.row_id = t.row_id
      returning s.row_id, s.message_id
    ),
    biz as (
      update ${n.table} b set ${n.state} = 0, ${n.modified} = now()
      from book where b.${n.id}::text = book.row_id and b.${n.state} <> 1
    ),
    tr as (
      insert into ${n.z}.outbox_transition (message_id, from_state, to_state, attempt, actor)
      select message_id, 3, 0, 0, $3 from book where message_id is not null
    ),
    au as (
      insert into ${n.z}.operation_audit (actor, action, subject, message_id, reason, details)
      select $3, 'source.release', 'source:' || $1 || ':' || row_id, message_id, $4, jsonb_build_object('source', $1, 'row_id', row_id)
      from book
    )
    select row_id, message_id from book`;

  // $1 source, $2 ids, $3 actor, $4 reason. The business row is never deleted or changed: the decision is
  // kept in source_row (never claimed again, no longer holding its key back) and the audit keeps the message.
  const discard = `
    with t as (${target}),
    book as (
      update ${n.z}.source_row s set discarded_at = now(), lease_owner = null, lease_until = null
      from t where s.source = $1 and s.row_id = t.row_id
      returning s.row_id, s.message_id, s.headers, s.payload, s.attempts, s.last_error
    ),
    au as (
      insert into ${n.z}.operation_audit (actor, action, subject, message_id, reason, details)
      select $3, 'source.discard', 'source:' || $1 || ':' || row_id, message_id, $4,
             jsonb_build_object('source', $1, 'row_id', row_id, 'headers', headers, 'payload_base64', encode(payload, 'base64'),
                                'attempts', attempts, 'last_error', last_error)
      from book
    )
    select row_id, message_id from book`;

  // $1 source, $2 message id: the row and its bookkeeping, for trace and resend.
  const messageRow = `
    select to_jsonb(b) as row, r.row_id, r.message_id, r.attempts, r.last_error, r.next_attempt_at, r.lease_owner, r.lease_until,
           r.parked, r.discarded_at, r.headers, r.sent_partition, r.sent_offset::text as sent_offset, r.topic, r.msg_key, r.key_seq::text as key_seq,
           b.${n.state} as state, b.${n.modified} as modified_at
    from ${n.z}.source_row r join ${n.table} b on b.${n.id}::text = r.row_id
    where r.source = $1 and r.message_id = $2`;

  // $1 source, $2 message ids (null: by window), $3 from, $4 to, $5 after row id (text; '0' = from the
  // start), $6 limit. Keyset on the id column's own type: the row named by $5 is looked up, so text order
  // (10 < 9) never decides. Rows are returned in id order, so one key's resent messages keep their order.
  const when = `b.${n.created ?? n.modified}`;
  const resendRows = `
    select to_jsonb(b) as row, r.row_id, r.message_id, r.headers, r.payload, r.topic, r.msg_key, b.${n.state} as state
    from ${n.z}.source_row r join ${n.table} b on b.${n.id}::text = r.row_id
    where r.source = $1 and r.message_id is not null and r.payload is not null
      and (case when $2::text[] is null then ${when} >= $3 and ${when} < $4 else r.message_id = any($2::text[]) end)
      and ($5 = '0' or b.${n.id} > (select x.${n.id} from ${n.table} x where x.${n.id}::text = $5))
    order by b.${n.id}
    limit $6`;

  // $1 source, $2 message ids, $3 partitions, $4 offsets, $5 actor, $6 reason: the new position of resent
  // sent rows, a 1→1 transition and an audit row each.
  const recordResent = `
    with s as (select * from unnest($2::text[], $3::int[], $4::bigint[]) as s(id, part, off)),
    upd as (
      update ${n.z}.source_row r
      set sent_partition = coalesce(s.part, r.sent_partition), sent_offset = coalesce(s.off, r.sent_offset)
      from s, ${n.table} b
      where r.source = $1 and r.message_id = s.id and b.${n.id}::text = r.row_id and b.${n.state} = 1
      returning r.message_id, r.row_id, r.attempts, s.part, s.off
    ),
    tr as (
      insert into ${n.z}.outbox_transition (message_id, from_state, to_state, attempt, actor)
      select message_id, 1, 1, attempts, $5 from upd
    ),
    au as (
      insert into ${n.z}.operation_audit (actor, action, subject, message_id, reason, details)
      select $5, 'source.resend', 'source:' || $1 || ':' || row_id, message_id, $6,
             jsonb_build_object('source', $1, 'row_id', row_id, 'partition', part, 'offset', off::text)
      from upd
    )
    select message_id from upd`;

  // $1 source, $2 from, $3 to, $4 after row id ('0' = from the start), $5 limit: the rows of a window that
  // have a message (encoded at a first claim; a row never claimed has nothing the broker could hold), for
  // reconcile. A discarded row is no longer expected anywhere.
  const windowRows = `
    select to_jsonb(b) as row, r.row_id, r.message_id, r.attempts, r.last_error, r.next_attempt_at, r.lease_owner, r.lease_until,
           r.parked, r.headers, r.sent_partition, r.sent_offset::text as sent_offset, r.topic, r.msg_key, r.key_seq::text as key_seq,
           b.${n.state} as state, b.${n.modified} as modified_at
    from ${n.z}.source_row r join ${n.table} b on b.${n.id}::text = r.row_id
    where r.source = $1 and r.message_id is not null and r.discarded_at is null and ${when} >= $2 and ${when} < $3
      and ($4 = '0' or b.${n.id} > (select x.${n.id} from ${n.table} x where x.${n.id}::text = $4))
    order by b.${n.id}
    limit $5`;

  // $1 source, $2 ids, $3 partitions, $4 offsets, $5 broker timestamps (ms), $6 actor. Ack-vs-state repair:
  // rows not marked sent whose message the broker holds become sent without a resend, the position the
  // broker holds recorded, a transition and an audit row each.
  const markSentFromBroker = `
    with f as (select * from unnest($2::text[], $3::int[], $4::bigint[], $5::float8[]) as f(id, part, off, ts)),
    old as (
      select r.row_id, r.message_id, r.attempts, case when r.parked then 3 else b.${n.state} end as from_state, f.part, f.off
      from ${n.z}.source_row r join f on r.message_id = f.id join ${n.table} b on b.${n.id}::text = r.row_id
      where r.source = $1 and b.${n.state} <> 1 and r.discarded_at is null
      order by r.row_id
      for update of b, r
    ),
    biz as (
      update ${n.table} b set ${n.state} = 1, ${n.modified} = now() from old where b.${n.id}::text = old.row_id
    ),
    book as (
      update ${n.z}.source_row s
      set parked = false, lease_owner = null, lease_until = null, sent_partition = old.part, sent_offset = old.off, last_error = null
      from old where s.source = $1 and s.row_id = old.row_id
    ),
    tr as (
      insert into ${n.z}.outbox_transition (message_id, from_state, to_state, attempt, actor)
      select message_id, from_state, 1, attempts, $6 from old
    ),
    au as (
      insert into ${n.z}.operation_audit (actor, action, subject, message_id, reason, details)
      select $6, 'source.mark-sent', 'source:' || $1 || ':' || row_id, message_id, 'the broker holds the message (ack-vs-state repair)',
             jsonb_build_object('source', $1, 'row_id', row_id, 'from_state', from_state, 'partition', part, 'offset', off::text)
      from old
    )
    select message_id from old`;

  // $1 source, $2 from, $3 to, $4 stuck after (ms), $5 limit: rows of a window without a message (never
  // claimed, or parked because the mapping failed at the first claim), with their counts over the window.
  // A row someone else marked sent (state 1) without the relay has nothing to check and is left out.
  const age = `extract(epoch from now() - ${when}) * 1000`;
  const unbuiltRows = `
    select b.${n.id}::text as row_id, b.${n.state} as state, coalesce(r.parked, false) as parked, r.last_error,
           ${age}::float8 as age_ms,
           count(*) over ()::int as total,
           count(*) filter (where coalesce(r.parked, false) or ${age} > $4) over ()::int as stuck
    from ${n.table} b
    left join ${n.z}.source_row r on r.source = $1 and r.row_id = b.${n.id}::text
    where ${when} >= $2 and ${when} < $3 and r.message_id is null and r.discarded_at is null and b.${n.state} <> 1
    order by b.${n.id}
    limit $5`;

  // $1 source, $2 from, $3 to, $4 after row id ('0' = from the start), $5 limit: rows of a window built
  // before migration 012 stored the topic and key, which only the mapping can give.
  const legacyRows = `
    select to_jsonb(b) as row, r.row_id, r.message_id, b.${n.state} as state, ${age}::float8 as age_ms
    from ${n.z}.source_row r join ${n.table} b on b.${n.id}::text = r.row_id
    where r.source = $1 and r.message_id is not null and (r.topic is null or r.msg_key is null) and r.discarded_at is null
      and ${when} >= $2 and ${when} < $3
      and ($4 = '0' or b.${n.id} > (select x.${n.id} from ${n.table} x where x.${n.id}::text = $4))
    order by b.${n.id}
    limit $5`;

  return {
    unbuiltRows,
    legacyRows,
    windowRows,
    markSentFromBroker,
    lock,
    lockPastHeldKeys,
    claim,
    storeEncoded,
    markSent,
    markFailed,
    backlog,
    parkedRows,
    release,
    discard,
    messageRow,
    resendRows,
    recordResent,
  };
}
