import { derivedOffset, derivedPartition, derivedSent, derivedSentAt, derivedState, walBatchJoin } from './stream-sent-sql.ts';

/**
 * Every statement of two-way confirmation (the producer's receipt store), in one place. `s` is the
 * validated, quoted schema name; values are always parameters. An outbox row's sending state is derived as
 * stream-sent-sql.ts says: a row the WAL relay's insert-only mode recorded in a batch is sent at the batch's
 * time and position, and a row still in the stream is pending, not sent.
 */
export function receiptSql(s: string) {
  return {
    /**
     * Stores receipts ($1 message ids, $2 groups, $3 applied times, as parallel arrays) of messages of this
     * service: outbox rows (their unique message_id index) and state-column source rows (source_row_message,
     * migration 15; a row built before migration 12 has no stored topic and is left out). Another producer's
     * ids (and ids retention removed) find neither and are dropped without a lookup of their own. A repeat
     * keeps the first receipt. The (group, topic) pairs of what was new refresh receipt_group, sorted so two
     * listeners lock its rows in one order.
     */
    record: `
      with r as (
        select distinct on (message_id, consumer_group) message_id, consumer_group, applied_at
        from unnest($1::text[], $2::text[], $3::timestamptz[]) as r(message_id, consumer_group, applied_at)
        order by message_id, consumer_group, applied_at
      ), ins as (
        insert into ${s}.delivery_receipt (message_id, consumer_group, topic, applied_at)
        select r.message_id, r.consumer_group, m.topic, r.applied_at
        from r cross join lateral (
          select o.topic from ${s}.outbox o where o.message_id = r.message_id
          union all
          select sr.topic from ${s}.source_row sr where sr.message_id = r.message_id and sr.topic is not null
          limit 1
        ) m
        on conflict (message_id, consumer_group) do nothing
        returning consumer_group, topic
      ), seen as (
        insert into ${s}.receipt_group (consumer_group, topic)
        select distinct consumer_group, topic from ins order by consumer_group, topic
        on conflict (consumer_group, topic) do update set last_seen = now()
        returning 1
      )
      select (select count(*)::int from ins) as stored, (select count(*)::int from seen) as groups`,

    /**
     * The rows of ids $1 with their receipts, and the groups that confirmed any message of the row's topic
     * (receipt_group is a short list: one row per group and topic). Outbox rows, and state-column source
     * rows in the outbox's shape: sent once the broker acknowledged them (their position is recorded), when
     * their first send's transition says; parked, failed (an error after an attempt) or pending otherwise.
     */
    confirmations: `
      with m as (
        select o.message_id, o.topic, ${derivedState()}::smallint as state, ${derivedSentAt()} as sent_at,
          ${derivedPartition()} as sent_partition, ${derivedOffset()} as sent_offset
        from ${s}.outbox o ${walBatchJoin(s)}
        where o.message_id = any($1::text[])
        union all
        select sr.message_id, sr.topic,
          (case when sr.sent_partition is not null then 1 when sr.parked then 3 when sr.last_error is not null then 2 else 0 end)::smallint,
          (select min(t.at) from ${s}.outbox_transition t where t.message_id = sr.message_id and t.to_state = 1),
          sr.sent_partition, sr.sent_offset
        from ${s}.source_row sr
        where sr.message_id = any($1::text[]) and sr.topic is not null
          and not exists (select 1 from ${s}.outbox o where o.message_id = sr.message_id)
      )
      select m.message_id, m.topic, m.state, m.sent_at, m.sent_partition, m.sent_offset::text as sent_offset,
        coalesce((
          select json_agg(json_build_object('group', r.consumer_group, 'appliedAt', r.applied_at, 'receivedAt', r.received_at)
                          order by r.consumer_group)
          from ${s}.delivery_receipt r where r.message_id = m.message_id
        ), '[]'::json) as applied,
        coalesce((
          select array_agg(g.consumer_group order by g.consumer_group) from ${s}.receipt_group g where g.topic = m.topic
        ), '{}'::text[]) as expected
      from m`,

    /** Groups with a receipt stored in the last $1 ms. */
    receiptGroups: `
      select distinct consumer_group from ${s}.receipt_group
      where last_seen > now() - $1 * interval '1 millisecond' order by consumer_group`,

    /** Topics group $1 has confirmed messages of, and its newest receipt. */
    groupTopics: `
      select array_agg(topic order by topic) as topics, max(last_seen) as last_seen
      from ${s}.receipt_group where consumer_group = $1`,

    /**
     * For group $1: messages of topics $4 (null: all) committed in the last $2 ms and sent at least $3 ms ago,
     * how many of them the group confirmed, and the oldest it did not. Outbox rows by their creation
     * (outbox_created), sent as recorded on the row or in a WAL batch (the batch's time is the send time),
     * and state-column source rows by their first claim (source_row_claimed), which also stands in for their
     * send time (a row sent on a retry counts that much sooner). A receipt is stored after its message was
     * committed, both on this database's clock, so only the group's receipts received within the window can
     * match: the join reads those (delivery_receipt_group_received), not the group's whole history.
     */
    groupWindow: `
      with rows as (
        select o.message_id, o.topic, o.created_at, ${derivedSentAt()} as sent_at
        from ${s}.outbox o ${walBatchJoin(s)}
        where o.created_at > now() - $2 * interval '1 millisecond' and ${derivedSent()}
          and ${derivedSentAt()} <= now() - $3 * interval '1 millisecond'
          and ($4::text[] is null or o.topic = any($4::text[]))
        union all
        select sr.message_id, sr.topic, sr.claimed_at, sr.claimed_at
        from ${s}.source_row sr
        where sr.claimed_at > now() - $2 * interval '1 millisecond' and sr.claimed_at <= now() - $3 * interval '1 millisecond'
          and sr.sent_partition is not null and sr.topic is not null and sr.discarded_at is null
          and ($4::text[] is null or sr.topic = any($4::text[]))
      ), m as (
        select w.*, r.message_id is not null as confirmed
        from rows w
        left join ${s}.delivery_receipt r
          on r.message_id = w.message_id and r.consumer_group = $1 and r.received_at > now() - $2 * interval '1 millisecond'
      )
      select c.sent, c.confirmed, u.message_id, u.topic, u.created_at, u.sent_at
      from (select count(*)::int as sent, (count(*) filter (where confirmed))::int as confirmed from m) as c
      left join lateral (select * from m where not confirmed order by created_at limit 1) as u on true`,
  };
}

export type ReceiptSql = ReturnType<typeof receiptSql>;
