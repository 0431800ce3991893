/**
 * Every statement of two-way confirmation (the producer's receipt store), in one place. `s` is the
 * validated, quoted schema name; values are always parameters.
 */
export function receiptSql(s: string) {
  return {
    /**
     * Stores receipts ($1 message ids, $2 groups, $3 applied times, as parallel arrays) of messages in this
     * outbox: the join on the outbox's unique message_id index drops another producer's ids (and ids
     * retention removed) without a lookup of their own. A repeat keeps the first receipt. The (group, topic)
     * pairs of what was new refresh receipt_group, sorted so two listeners lock its rows in one order.
     */
    record: `
      with r as (
        select distinct on (message_id, consumer_group) message_id, consumer_group, applied_at
        from unnest($1::text[], $2::text[], $3::timestamptz[]) as r(message_id, consumer_group, applied_at)
        order by message_id, consumer_group, applied_at
      ), ins as (
        insert into ${s}.delivery_receipt (message_id, consumer_group, topic, applied_at)
        select r.message_id, r.consumer_group, o.topic, r.applied_at from r join ${s}.outbox o on o.message_id = r.message_id
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
     * The outbox rows of ids $1 with their receipts, and the groups that confirmed any message of the row's
     * topic (receipt_group is a short list: one row per group and topic).
     */
    confirmations: `
      select o.message_id, o.topic, o.state, o.sent_at, o.sent_partition, o.sent_offset::text as sent_offset,
        coalesce((
          select json_agg(json_build_object('group', r.consumer_group, 'appliedAt', r.applied_at, 'receivedAt', r.received_at)
                          order by r.consumer_group)
          from ${s}.delivery_receipt r where r.message_id = o.message_id
        ), '[]'::json) as applied,
        coalesce((
          select array_agg(g.consumer_group order by g.consumer_group) from ${s}.receipt_group g where g.topic = o.topic
        ), '{}'::text[]) as expected
      from ${s}.outbox o where o.message_id = any($1::text[])`,

    /** Groups with a receipt stored in the last $1 ms. */
    receiptGroups: `
      select distinct consumer_group from ${s}.receipt_group
      where last_seen > now() - $1 * interval '1 millisecond' order by consumer_group`,

    /** Topics group $1 has confirmed messages of, and its newest receipt. */
    groupTopics: `
      select array_agg(topic order by topic) as topics, max(last_seen) as last_seen
      from ${s}.receipt_group where consumer_group = $1`,

    /**
     * For group $1: outbox messages of topics $4 (null: all) committed in the last $2 ms and sent at least
     * $3 ms ago, how many of them the group confirmed, and the oldest it did not. The window keeps this to
     * recent rows (outbox_created). A receipt is stored after its message was committed, both on this
     * database's clock, so only the group's receipts received within the window can match: the join reads
     * those (delivery_receipt_group_received), not the group's whole history.
     */
    groupWindow: `
      with m as (
        select o.message_id, o.topic, o.created_at, o.sent_at, r.message_id is not null as confirmed
        from ${s}.outbox o
        left join ${s}.delivery_receipt r
          on r.message_id = o.message_id and r.consumer_group = $1 and r.received_at > now() - $2 * interval '1 millisecond'
        where o.created_at > now() - $2 * interval '1 millisecond' and o.state = 1
          and o.sent_at <= now() - $3 * interval '1 millisecond'
          and ($4::text[] is null or o.topic = any($4::text[]))
      )
      select c.sent, c.confirmed, u.message_id, u.topic, u.created_at, u.sent_at
      from (select count(*)::int as sent, (count(*) filter (where confirmed))::int as confirmed from m) as c
      left join lateral (select * from m where not confirmed order by created_at limit 1) as u on true`,
  };
}

export type ReceiptSql = ReturnType<typeof receiptSql>;
