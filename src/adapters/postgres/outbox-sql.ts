/**
 * Every statement the dedicated outbox runs, in one place. `s` is the validated, quoted schema name;
 * values are always parameters.
 */
export function outboxSql(s: string, options: { notifyChannel: string | undefined; holdKeyOnParked: boolean }) {
  // The per-key sequence bump takes a row lock on (producer, key) until the caller commits. That makes
  // the sequence gapless (a rollback undoes it) and makes one key's enqueues commit in sequence order.
  // seq_id (the relay's order) is drawn in the upsert's RETURNING, i.e. after the key lock is held;
  // a column default would be drawn earlier, and two enqueues of one key could get crossed numbers.
  const insert = `
    with seq as (
      insert into ${s}.outbox_key_seq (producer_id, msg_key, seq)
      select $6, $3, 1 where $9::boolean
      on conflict (producer_id, msg_key) do update set seq = ${s}.outbox_key_seq.seq + 1
      returning seq, nextval('${s}.outbox_seq_id_seq') as seq_id
    ), ins as (
      insert into ${s}.outbox (seq_id, message_id, topic, msg_key, msg_type, trace_id, producer_id, key_seq, headers, payload)
      select v.seq_id, $1, coalesce(d.target_topic, $2), $3, $4, $5, $6, v.seq, $7::jsonb || jsonb_build_object('zl-seq', v.seq::text), $8
      from (
        select coalesce((select seq from seq), 0) as seq,
               coalesce((select seq_id from seq), nextval('${s}.outbox_seq_id_seq')) as seq_id
      ) v
      -- a divert rule (O4) for this topic and type, or for all its types ('*'), sends it elsewhere
      left join lateral (
        select dr.target_topic from ${s}.topic_divert dr
        where dr.topic = $2 and dr.msg_type in ($4, '*') order by (dr.msg_type = '*') limit 1
      ) d on true
      returning key_seq
    )
    select key_seq${options.notifyChannel ? `, pg_notify('${options.notifyChannel}', '') as notified` : ''} from ins`;

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
  const claim = `
    with cand as (
      select seq_id, topic, msg_key from ${s}.outbox
      where state in (0, 2) and next_attempt_at <= now() and (lease_until is null or lease_until < now())
      order by seq_id
      limit $2
      for update skip locked
    ), blocked as (
      select p.topic, p.msg_key, min(p.seq_id) as first_seq_id from ${s}.outbox p
      where ${blocking} and p.seq_id < (select max(seq_id) from cand)
        and (p.topic, p.msg_key) in (select topic, msg_key from cand)
        and p.seq_id not in (select seq_id from cand)
      group by p.topic, p.msg_key
    ), ok as (
      select c.seq_id from cand c
      left join blocked b on b.topic = c.topic and b.msg_key = c.msg_key
      where b.first_seq_id is null or c.seq_id < b.first_seq_id
    )
    update ${s}.outbox o
    set lease_owner = $1, lease_until = now() + $3 * interval '1 millisecond', attempts = o.attempts + 1
    from ok where o.seq_id = ok.seq_id
    returning o.seq_id::text as ref, o.message_id, o.topic, o.msg_key, o.headers, o.payload, o.attempts, o.state`;

  const markSent = `
    with r as (select * from unnest($1::bigint[], $2::int[], $3::bigint[]) as r(id, part, off)),
    old as (
      select o.seq_id, o.state from ${s}.outbox o join r on o.seq_id = r.id where o.state <> 1 for update of o
    ),
    upd as (
      update ${s}.outbox o
      set state = 1, sent_at = now(), modified_time = now(), lease_owner = null, lease_until = null,
          sent_partition = r.part, sent_offset = r.off
      from r, old where o.seq_id = r.id and old.seq_id = o.seq_id
      returning o.message_id, old.state as from_state, o.attempts
    )
    insert into ${s}.outbox_transition (message_id, from_state, to_state, attempt, actor)
    select message_id, from_state, 1, attempts, $4 from upd`;

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
  const anyDue = `
    select (
      select 1 from ${s}.outbox
      where state in (0, 2) and next_attempt_at <= now() and (lease_until is null or lease_until < now())
      order by next_attempt_at limit 1
    ) is not null as due`;

  const backlog = `
    select
      count(*) filter (where state = 0)::int as pending,
      count(*) filter (where state = 2)::int as failed,
      count(*) filter (where state = 3)::int as parked,
      coalesce(extract(epoch from now() - min(created_at) filter (where state in (0, 2))) * 1000, 0)::float8 as oldest_ms,
      (select extract(epoch from min(next_attempt_at) - now()) * 1000 from ${s}.outbox where state in (0, 2))::float8 as next_due_ms
    from ${s}.outbox where state <> 1`;

  return { insert, claim, markSent, markFailed, backlog, anyDue };
}
