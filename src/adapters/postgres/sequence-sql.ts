import { derivedOffset, derivedPartition, derivedSent, walBatchCtes, walBatchSetJoin } from './stream-sent-sql.ts';

/**
 * Every statement of persistent loss detection (C9) and of the producing side of the control channel, in
 * one place. `s` is the validated, quoted schema name; values are always parameters.
 */
export function sequenceSql(s: string) {
  const gapColumns = `g.id::text, g.consumer_group, g.topic, g.msg_partition, g.producer_id, g.msg_key, g.from_seq::text, g.to_seq::text,
    g.tail, g.at_offset::text, g.detected_at, g.healed_at, g.alarmed_at, g.repair_requests, g.repair_requested_at, g.next_repair_at,
    (extract(epoch from now() - g.detected_at) * 1000)::float8 as age_ms, coalesce(g.next_repair_at <= now(), true) as repair_due`;
  return {
    /**
     * Runs in the effect transaction, once for all its messages: $1 group, then one array element per run
     * of consecutive sequences of one key — $2 topics, $3 partitions, $4 producers, $5 keys, $6 first seq,
     * $7 last seq, $8 offset of the last. Runs of one key are in applied order.
     *
     * A run that starts past what came before it (the previous run of its key in this batch, else the stored
     * mark) opens a gap; a key with no mark sets the baseline. A gap that a tail check already opened at the
     * same number ends before this run (it arrived, so only what is in between is missing). A run that
     * covers the front of an open gap moves the gap's front past it, and heals it once past its end.
     * Marks are upserted in key order (a fixed lock order between concurrent transactions) and only ever
     * move up. Returns the gaps found and healed.
     */
    recordRuns: `
      with r as (
        select * from unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[])
          with ordinality as r(topic, part, producer, k, first_seq, last_seq, off, n)
      ),
      prev as (
        select r.*, greatest(lag(r.last_seq) over (partition by r.topic, r.producer, r.k order by r.n), m.last_seq) as before
        from r left join ${s}.sequence_mark m
          on m.consumer_group = $1 and m.topic = r.topic and m.producer_id = r.producer and m.msg_key = r.k
      ),
      up as (
        insert into ${s}.sequence_mark (consumer_group, topic, producer_id, msg_key, last_seq, msg_partition, msg_offset)
        select distinct on (topic, producer, k) $1, topic, producer, k, last_seq, part, off from r
        order by topic, producer, k, last_seq desc
        on conflict (consumer_group, topic, producer_id, msg_key) do update
          set last_seq = excluded.last_seq, msg_partition = excluded.msg_partition, msg_offset = excluded.msg_offset, updated_at = now()
          where ${s}.sequence_mark.last_seq < excluded.last_seq
      ),
      found as (
        insert into ${s}.sequence_gap as g (consumer_group, topic, msg_partition, producer_id, msg_key, from_seq, to_seq, missing_from)
        select $1, topic, part, producer, k, before + 1, first_seq - 1, before + 1 from prev where first_seq > before + 1
        on conflict (consumer_group, topic, producer_id, msg_key, from_seq) where healed_at is null
        do update set to_seq = least(g.to_seq, excluded.to_seq), tail = false
        returning ${gapColumns}
      ),
      healed as (
        update ${s}.sequence_gap g
        set from_seq = r.last_seq + 1, healed_at = case when r.last_seq >= g.to_seq then now() end
        from r
        where g.consumer_group = $1 and g.topic = r.topic and g.producer_id = r.producer and g.msg_key = r.k
          and g.healed_at is null and g.from_seq between r.first_seq and r.last_seq
        returning ${gapColumns}
      )
      select 'found' as change, * from found
      union all
      select 'healed', * from healed where healed_at is not null`,

    /** Open gaps of group $1, oldest first, at most $2. */
    openGaps: `
      select ${gapColumns} from ${s}.sequence_gap g
      where g.consumer_group = $1 and g.healed_at is null
      order by g.detected_at, g.id
      limit $2`,

    /**
     * Heals open gaps of group $1 whose every missing number is a dead letter of this group (its producer
     * and sequence headers): those were delivered and set aside, not lost, and a resend would only be
     * dead-lettered again.
     */
    healDeadLettered: `
      update ${s}.sequence_gap g set healed_at = now()
      where g.consumer_group = $1 and g.healed_at is null
        and (
          select count(distinct (d.headers ->> 'zl-seq')) from ${s}.dead_letter d
          where d.consumer_group = g.consumer_group and d.msg_key = g.msg_key and d.headers ->> 'zl-producer-id' = g.producer_id
            and d.headers ->> 'zl-seq' ~ '^[0-9]{1,18}$' and (d.headers ->> 'zl-seq')::bigint between g.from_seq and g.to_seq
        ) = g.to_seq - g.from_seq + 1
      returning ${gapColumns}`,

    /**
     * $1 gap ids: marks them alarmed and writes the alarm trail (sequence_alarm, read by status and the
     * metrics collector) in the same statement; a gap alarmed before is left alone. Returns the ids this
     * statement alarmed: of two watchers (two checks of one process, or two members of a group) one wins.
     */
    markAlarmed: `
      with a as (
        update ${s}.sequence_gap set alarmed_at = now() where id = any($1::bigint[]) and alarmed_at is null
        returning id, consumer_group, topic, msg_partition, producer_id, msg_key, from_seq, to_seq
      ), trail as (
        insert into ${s}.sequence_alarm (consumer_group, kind, topic, msg_partition, producer_id, msg_key, expected, received, missing)
        select consumer_group, 'gap', topic, msg_partition, producer_id, msg_key, from_seq, to_seq + 1, to_seq - from_seq + 1 from a
      )
      select id::text from a`,

    /**
     * $1 gap id, $2 ms until the next request may go (database time, like the gap's age), $3 the request
     * count the caller read: it counts the request only if nobody counted one since (returns the id then),
     * so a request goes out once however many watchers saw the gap due.
     */
    markRepairRequested: `
      update ${s}.sequence_gap
      set repair_requests = repair_requests + 1, repair_requested_at = now(), next_repair_at = now() + $2 * interval '1 millisecond'
      where id = $1 and repair_requests = $3 and healed_at is null
      returning id::text`,

    /** $1 group, $2 topics, $3 producers, $4 keys: the highest applied sequence of each that has one. */
    appliedSeqs: `
      select m.topic, m.producer_id, m.msg_key, m.last_seq::text from ${s}.sequence_mark m
      join unnest($2::text[], $3::text[], $4::text[]) as r(topic, producer, k)
        on m.consumer_group = $1 and m.topic = r.topic and m.producer_id = r.producer and m.msg_key = r.k`,

    /** A tail gap: $1 group, $2 topic, $3 partition, $4 producer, $5 key, $6 from, $7 to, $8 the producer's offset of `to`. */
    recordTailGap: `
      insert into ${s}.sequence_gap as g (consumer_group, topic, msg_partition, producer_id, msg_key, from_seq, to_seq, missing_from, tail, at_offset)
      values ($1, $2, $3, $4, $5, $6, $7, $6, true, $8)
      on conflict (consumer_group, topic, producer_id, msg_key, from_seq) where healed_at is null
      do update set to_seq = greatest(g.to_seq, excluded.to_seq), at_offset = case when g.tail then excluded.at_offset else g.at_offset end`,

    /** Per group (all, or those in $1): open gaps, alarmed ones, missing numbers, oldest detection. */
    gapSummary: `
      select consumer_group, count(*)::int as open, count(alarmed_at)::int as alarmed, sum(to_seq - from_seq + 1)::text as missing,
             count(*) filter (where tail)::int as tail, min(detected_at) as oldest, max(repair_requests)::int as repair_requests
      from ${s}.sequence_gap
      where healed_at is null and ($1::text[] is null or consumer_group = any($1::text[]))
      group by consumer_group order by consumer_group`,

    // ---- the producing side ------------------------------------------------------------------------
    /**
     * Ids of the rows of producer $1, topic $2, key $3 with sequence in [$4, $5], in sequence order: outbox
     * rows (source null), and rows of the state-column sources $6 (those whose producer id is $1; an empty
     * array reads none), which draw their numbers from the same per-(producer, key) sequence. No index
     * covers this (an extra outbox index would cost every enqueue; a source's rows are read through its
     * primary key's source prefix); resend requests are rare and bounded. A discarded source row is no
     * longer sent anywhere and is left out.
     */
    idsInRange: `
      select x.message_id, x.source from (
        select o.message_id, o.key_seq, null::text as source from ${s}.outbox o
        where o.producer_id = $1 and o.topic = $2 and o.msg_key = $3 and o.key_seq between $4 and $5
        union all
        select r.message_id, r.key_seq, r.source from ${s}.source_row r
        where r.source = any($6::text[]) and r.topic = $2 and r.msg_key = $3 and r.key_seq between $4 and $5
          and r.message_id is not null and r.discarded_at is null
      ) x
      order by x.key_seq`,

    /**
     * The producer marks: per (producer, topic, key) of rows created in the last $1 ms and sent, the newest
     * sequence and where the broker acknowledged it; at most $2. Outbox rows by their creation (the
     * created_at index), and rows of the state-column sources $3 (names) with producer ids $4 by their first
     * claim, when their message and number were made (source_row_claimed, migration 15). A source row
     * counts as sent once the broker acknowledged it (its position is recorded); an outbox row once its
     * position is recorded on the row or, in the WAL relay's insert-only mode, in a batch (stream-sent-sql.ts).
     * Read from the row alone, those keys would have no marks and a lost tail would go unseen; a row still in
     * the stream is not sent and gives no mark. The batches are looked up for all the recent rows at once
     * (`walBatchCtes`): one at a time, 100,000 rows took 2.8 s, every 10 s.
     */
    recentSentMarks: `
      with recent as materialized (
        select o.producer_id, o.topic, o.msg_key, o.key_seq, o.seq_id, o.state, o.sent_at, o.sent_partition, o.sent_offset
        from ${s}.outbox o
        where o.created_at > now() - $1 * interval '1 millisecond' and o.key_seq > 0
      ),
      ${walBatchCtes(s, 'recent')}
      select distinct on (x.producer_id, x.topic, x.msg_key) x.producer_id, x.topic, x.msg_key, x.key_seq::text,
             x.sent_partition, x.sent_offset::text
      from (
        select o.producer_id, o.topic, o.msg_key, o.key_seq, ${derivedPartition()} as sent_partition, ${derivedOffset()} as sent_offset
        from recent o ${walBatchSetJoin('o')}
        where ${derivedSent()} and ${derivedPartition()} is not null and ${derivedOffset()} is not null
        union all
        select p.producer_id, r.topic, r.msg_key, r.key_seq, r.sent_partition, r.sent_offset
        from ${s}.source_row r join unnest($3::text[], $4::text[]) as p(source, producer_id) on r.source = p.source
        where r.claimed_at > now() - $1 * interval '1 millisecond' and r.key_seq > 0 and r.topic is not null
          and r.msg_key is not null and r.sent_partition is not null and r.sent_offset is not null and r.discarded_at is null
      ) x
      order by x.producer_id, x.topic, x.msg_key, x.key_seq desc
      limit $2`,
  };
}

export type SequenceSql = ReturnType<typeof sequenceSql>;
