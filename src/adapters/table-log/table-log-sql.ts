import { quoteIdent } from '../../core/identifier.ts';

/** The notification channel of one schema's table log: `t:<topic>` after a publish, `g:<group>` on a group change. */
export function tableLogChannel(schema: string): string {
  const channel = `${schema}_log`;
  quoteIdent(channel, 'notification channel');
  return channel;
}

/**
 * Every statement the table log runs, in one place. `schema` is validated and quoted here; values are
 * always parameters. Offsets travel as text both ways because PGlite returns int8 as a JS number.
 * Intervals are given in milliseconds.
 */
export function tableLogSql(schema: string) {
  const s = quoteIdent(schema, 'schema');
  const liveMember = `m.group_id = o.group_id and m.member_id = o.member_id and m.lease_until > now()`;

  return {
    // ---- topics --------------------------------------------------------------------------------
    /** $1 topic, $2 partitions. Returns a row only when the topic is new. */
    createTopic: `insert into ${s}.log_topic (topic, partitions) values ($1, $2) on conflict (topic) do nothing returning partitions`,
    /** $1 topic, $2 partitions: counter rows for partitions 0..$2-1 (existing ones untouched). */
    createPartitions: `
      insert into ${s}.log_partition (topic, partition)
      select $1, p from generate_series(0, $2::int - 1) as p
      on conflict (topic, partition) do nothing`,
    /** $1 topic, $2 new total. Only ever grows, so a key's existing records never change partition behind a reader. */
    growTopic: `update ${s}.log_topic set partitions = $2 where topic = $1 and partitions <= $2 returning partitions`,
    /** $1 topics. */
    topicPartitions: `select topic, partitions from ${s}.log_topic where topic = any($1::text[])`,
    listTopics: `select topic, partitions from ${s}.log_topic order by topic`,

    // ---- publishing (one transaction) ----------------------------------------------------------
    // Offset assignment. A plain sequence would hand out numbers at insert time, and two concurrent
    // transactions could commit out of number order: a reader that saw offset 8 committed would move
    // past 7, which commits a moment later, and never deliver it. Instead each partition has a counter
    // row that the publishing transaction locks and advances. The row lock serialises publishers of one
    // partition until commit, so offsets become visible strictly in order, and a rollback returns its
    // numbers with it: offsets stay dense and gapless. Locks are taken in (topic, partition) order so
    // two batches spanning the same partitions cannot deadlock.
    /** $1 topics, $2 partitions. Locks the counter rows and returns the next offset of each. */
    lockPartitions: `
      select p.topic, p.partition, p.next_offset::text as next_offset
      from ${s}.log_partition p
      join unnest($1::text[], $2::int[]) as w(topic, partition) on p.topic = w.topic and p.partition = w.partition
      order by p.topic, p.partition
      for update of p`,
    /** $1 topics, $2 partitions, $3 record counts. Rows are already locked by lockPartitions. */
    advancePartitions: `
      update ${s}.log_partition p set next_offset = p.next_offset + w.n
      from unnest($1::text[], $2::int[], $3::bigint[]) as w(topic, partition, n)
      where p.topic = w.topic and p.partition = w.partition`,
    /** $1 topics, $2 partitions, $3 offsets (text), $4 keys, $5 headers (JSON text), $6 values. */
    insertRecords: `
      insert into ${s}.log_record (topic, partition, log_offset, msg_key, headers, value)
      select r.topic, r.partition, r.log_offset::bigint, r.msg_key, r.headers::jsonb, r.value
      from unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::bytea[])
        as r(topic, partition, log_offset, msg_key, headers, value)`,
    /** $1 channel, $2 payload. Delivered at commit, never for a rolled-back transaction. */
    notify: `select pg_notify($1, $2)`,

    // ---- fetching ------------------------------------------------------------------------------
    /**
     * $1 topics, $2 partitions, $3 positions (text), $4 max records per partition, $5 max value bytes
     * per partition. The first record always goes, so one oversized record cannot stall a partition;
     * otherwise a batch stops before the record that would take it over the limit.
     */
    fetch: `
      select r.topic, r.partition, r.log_offset::text as log_offset, r.msg_key, r.headers, r.value,
             floor(extract(epoch from r.created_at) * 1000)::float8 as ts
      from unnest($1::text[], $2::int[], $3::text[]) as w(topic, partition, position)
      cross join lateral (
        select x.* from (
          select y.*, sum(octet_length(y.value)) over (order by y.log_offset) as running,
                 row_number() over (order by y.log_offset) as n
          from (
            select rec.* from ${s}.log_record rec
            where rec.topic = w.topic and rec.partition = w.partition and rec.log_offset >= w.position::bigint
            order by rec.log_offset
            limit $4
          ) y
        ) x
        where x.running <= $5 or x.n = 1
      ) r
      order by r.topic, r.partition, r.log_offset`,

    // ---- group membership ----------------------------------------------------------------------
    /** $1 group, $2 member, $3 topics, $4 session ms. Also clears members of the group whose lease ran out. */
    join: `
      with reap as (
        delete from ${s}.log_group_member where group_id = $1 and member_id <> $2 and lease_until < now()
      )
      insert into ${s}.log_group_member (group_id, member_id, topics, lease_until)
      values ($1, $2, $3::text[], now() + $4 * interval '1 millisecond')
      on conflict (group_id, member_id) do update set topics = excluded.topics, lease_until = excluded.lease_until`,
    /**
     * $1 group, $2 member, $3 session ms. Renews a lease that is still valid and nothing else: a member
     * whose lease ran out gets no row back, is dead to the others, and must rejoin.
     */
    heartbeat: `
      update ${s}.log_group_member set lease_until = now() + $3 * interval '1 millisecond'
      where group_id = $1 and member_id = $2 and lease_until > now()
      returning member_id`,
    /** $1 group, $2 member. */
    leave: `delete from ${s}.log_group_member where group_id = $1 and member_id = $2`,
    /**
     * $1 group, $2 member. Everything one rebalance pass needs, in one round trip: the live members,
     * the partition counts of every topic any of them subscribes to, and what this member owns.
     */
    groupState: `
      with live as (
        select member_id, topics from ${s}.log_group_member where group_id = $1 and lease_until > now()
      )
      select
        (select coalesce(json_agg(json_build_object('memberId', member_id, 'topics', topics) order by member_id), '[]'::json)
           from live) as members,
        (select coalesce(json_agg(json_build_object('topic', topic, 'partitions', partitions) order by topic), '[]'::json)
           from ${s}.log_topic where topic in (select unnest(topics) from live)) as topics,
        (select coalesce(json_agg(json_build_object('topic', topic, 'partition', partition, 'generation', generation::text)), '[]'::json)
           from ${s}.log_group_owner where group_id = $1 and member_id = $2) as owned`,
    /** $1 group, $2 topics, $3 partitions. */
    ensureOwnerRows: `
      insert into ${s}.log_group_owner (group_id, topic, partition)
      select $1, c.topic, c.partition from unnest($2::text[], $3::int[]) as c(topic, partition)
      on conflict (group_id, topic, partition) do nothing`,
    /**
     * $1 group, $2 member, $3 topics, $4 partitions. Takes partitions that are free, already ours, or
     * held by a member whose lease ran out, and bumps their generation (the fence for commits). Two
     * claimants of one row serialise on its lock; the loser re-checks the new row and gets nothing.
     */
    claim: `
      update ${s}.log_group_owner o set member_id = $2, generation = o.generation + 1, changed_at = now()
      from unnest($3::text[], $4::int[]) as c(topic, partition)
      where o.group_id = $1 and o.topic = c.topic and o.partition = c.partition
        and (o.member_id is null or o.member_id = $2
             or not exists (select 1 from ${s}.log_group_member m where ${liveMember}))
      returning o.topic, o.partition, o.generation::text as generation`,
    /**
     * $1 group, $2 topics, $3 partitions. Where a new owner starts: the committed offset, else the end
     * of the partition. Run as its own statement after `claim` has committed: a statement's snapshot
     * predates any wait for a lock, so reading it inside the claim could miss a commit that the claim
     * waited for.
     */
    startPositions: `
      select c.topic, c.partition, g.committed_offset::text as committed, p.next_offset::text as high
      from unnest($2::text[], $3::int[]) as c(topic, partition)
      left join ${s}.log_group_offset g on g.group_id = $1 and g.topic = c.topic and g.partition = c.partition
      left join ${s}.log_partition p on p.topic = c.topic and p.partition = c.partition`,
    /** $1 group, $2 member, $3 topics, $4 partitions, $5 generations. Gives partitions back, if still ours. */
    release: `
      update ${s}.log_group_owner o set member_id = null, changed_at = now()
      from unnest($3::text[], $4::int[], $5::bigint[]) as c(topic, partition, generation)
      where o.group_id = $1 and o.member_id = $2 and o.topic = c.topic and o.partition = c.partition
        and o.generation = c.generation`,
    /**
     * $1 group, $2 member, $3 topics, $4 partitions, $5 offsets (text), $6 generations. Writes only the
     * offsets of partitions this member still owns under the generation it claimed them with, and never
     * past the partition's end (a later record would be skipped unread). The owner rows are locked (FOR
     * SHARE) for the statement, so a concurrent claim waits until this commit is done and then reads the
     * offset it wrote; a claim that got in first changed the generation and the commit writes nothing for
     * that partition. Returns each input partition with status committed, fenced or beyond_end.
     */
    commit: `
      with input as (
        select * from unnest($3::text[], $4::int[], $5::text[], $6::bigint[]) as i(topic, partition, committed_offset, generation)
      ), owned as (
        select o.topic, o.partition from ${s}.log_group_owner o
        join input i on o.topic = i.topic and o.partition = i.partition and o.generation = i.generation
        where o.group_id = $1 and o.member_id = $2
        for share of o
      ), valid as (
        select i.topic, i.partition, i.committed_offset::bigint as committed_offset, i.generation
        from input i
        join owned w on w.topic = i.topic and w.partition = i.partition
        join ${s}.log_partition p on p.topic = i.topic and p.partition = i.partition
        where i.committed_offset::bigint <= p.next_offset
      ), written as (
        insert into ${s}.log_group_offset (group_id, topic, partition, committed_offset, member_id, generation)
        select $1, v.topic, v.partition, v.committed_offset, $2, v.generation from valid v
        on conflict (group_id, topic, partition) do update
          set committed_offset = excluded.committed_offset, member_id = excluded.member_id,
              generation = excluded.generation, committed_at = now()
        returning topic, partition
      )
      select i.topic, i.partition,
             case when exists (select 1 from written w where w.topic = i.topic and w.partition = i.partition) then 'committed'
                  when exists (select 1 from owned w where w.topic = i.topic and w.partition = i.partition) then 'beyond_end'
                  else 'fenced' end as status
      from input i`,

    // ---- admin and retention -------------------------------------------------------------------
    /** $1 topic. high = next offset to be written; low = lowest retained (= high when empty). */
    endOffsets: `
      select p.partition, p.next_offset::text as high,
             coalesce((select min(r.log_offset) from ${s}.log_record r where r.topic = p.topic and r.partition = p.partition),
                      p.next_offset)::text as low
      from ${s}.log_partition p where p.topic = $1 order by p.partition`,
    /**
     * $1 topic, $2 epoch ms. Per partition, the first offset written at or after that time (the next offset
     * when none was): where a time window starts in the log (reconciliation, trace). Served by log_record_created.
     */
    offsetsForTime: `
      select p.partition,
             coalesce((select min(r.log_offset) from ${s}.log_record r
                       where r.topic = p.topic and r.partition = p.partition and r.created_at >= to_timestamp($2::float8 / 1000)),
                      p.next_offset)::text as offset
      from ${s}.log_partition p where p.topic = $1 order by p.partition`,
    /** $1 group, $2 topic or null for all. */
    committedOffsets: `
      select topic, partition, committed_offset::text as committed_offset, member_id, generation::text as generation, committed_at
      from ${s}.log_group_offset where group_id = $1 and ($2::text is null or topic = $2)
      order by topic, partition`,
    /**
     * $1 group, $2 topic or null. Per partition of every topic the group has committed on (or of $2):
     * end offset, committed offset (null if never), and lag, counting from the lowest retained record
     * when nothing was committed.
     */
    lag: `
      select p.topic, p.partition, p.next_offset::text as high, g.committed_offset::text as committed,
             (p.next_offset - coalesce(g.committed_offset,
               (select min(r.log_offset) from ${s}.log_record r where r.topic = p.topic and r.partition = p.partition),
               p.next_offset))::text as lag
      from ${s}.log_partition p
      left join ${s}.log_group_offset g on g.group_id = $1 and g.topic = p.topic and g.partition = p.partition
      where ($2::text is null and p.topic in (select topic from ${s}.log_group_offset where group_id = $1))
         or p.topic = $2
      order by p.topic, p.partition`,
    /** $1 group, $2 topics, $3 partitions: lag of the given partitions, as `lag` but for a member's assignment. */
    partitionLag: `
      select c.topic, c.partition,
             (p.next_offset - coalesce(g.committed_offset,
               (select min(r.log_offset) from ${s}.log_record r where r.topic = p.topic and r.partition = p.partition),
               p.next_offset))::text as lag
      from unnest($2::text[], $3::int[]) as c(topic, partition)
      join ${s}.log_partition p on p.topic = c.topic and p.partition = c.partition
      left join ${s}.log_group_offset g on g.group_id = $1 and g.topic = c.topic and g.partition = c.partition
      order by c.topic, c.partition`,
    /** $1 group. */
    describeGroup: `
      select
        (select coalesce(json_agg(json_build_object('memberId', member_id, 'topics', topics, 'leaseUntil', lease_until,
                                                    'live', lease_until > now()) order by member_id), '[]'::json)
           from ${s}.log_group_member where group_id = $1) as members,
        (select coalesce(json_agg(json_build_object('topic', topic, 'partition', partition, 'memberId', member_id,
                                                    'generation', generation::text) order by topic, partition), '[]'::json)
           from ${s}.log_group_owner where group_id = $1) as owners`,
    /** $1 group: forgets offsets, owners and members, which also stops the group holding back retention. */
    deleteGroupOffsets: `delete from ${s}.log_group_offset where group_id = $1`,
    deleteGroupOwners: `delete from ${s}.log_group_owner where group_id = $1`,
    deleteGroupMembers: `delete from ${s}.log_group_member where group_id = $1`,
    /**
     * $1 group, $2 topics: `zeroloss groups delete`. Deletes the group's offsets and owners on the topics
     * unless a member's lease is live (then \`live\` > 0 and nothing changes); \`deleted\` names what went.
     */
    deleteGroupTopics: `
      with live as (
        select 1 from ${s}.log_group_member where group_id = $1 and lease_until > now() limit 1
      ), off as (
        delete from ${s}.log_group_offset
        where group_id = $1 and topic = any($2::text[]) and not exists (select 1 from live)
        returning topic, partition
      ), own as (
        delete from ${s}.log_group_owner
        where group_id = $1 and topic = any($2::text[]) and not exists (select 1 from live)
      )
      select (select count(*) from live)::int as live,
        coalesce((select json_agg(topic || '[' || partition || ']' order by topic, partition) from off), '[]'::json) as deleted`,
    /**
     * $1 min age ms, $2 batch size, $3 topic or null. Deletes one batch of records that every group with
     * offsets on the topic, or that has joined it, has committed past (a group with no offset for a
     * partition holds all of it) and that are older than the age. A topic no group has ever joined keeps
     * everything.
     */
    deleteRetained: `
      with floors as (
        select p.topic, p.partition, min(coalesce(o.committed_offset, 0)) as floor
        from ${s}.log_partition p
        -- Every group that committed on the topic or has joined it (its owner rows): a group that joined and
        -- has not committed yet starts at the earliest record, so its floor is 0.
        join (
          select group_id, topic from ${s}.log_group_offset
          union
          select group_id, topic from ${s}.log_group_owner
        ) g on g.topic = p.topic
        left join ${s}.log_group_offset o on o.group_id = g.group_id and o.topic = p.topic and o.partition = p.partition
        where $3::text is null or p.topic = $3
        group by p.topic, p.partition
      ), doomed as (
        select d.topic, d.partition, d.log_offset from floors f
        cross join lateral (
          select r.topic, r.partition, r.log_offset from ${s}.log_record r
          where r.topic = f.topic and r.partition = f.partition and r.log_offset < f.floor
            and r.created_at < now() - $1 * interval '1 millisecond'
          order by r.log_offset
          limit $2
        ) d
        limit $2
      ), gone as (
        delete from ${s}.log_record r using doomed d
        where r.topic = d.topic and r.partition = d.partition and r.log_offset = d.log_offset
        returning 1
      )
      select count(*)::int as deleted from gone`,
  } as const;
}

export type TableLogSql = ReturnType<typeof tableLogSql>;
