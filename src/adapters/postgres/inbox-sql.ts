/**
 * Every statement the consumer side runs (inbox, start marks, dead letters, DB-stored offsets), in one
 * place. `s` is the validated, quoted schema name; values are always parameters.
 */
export function inboxSql(s: string) {
  return {
    /**
     * The dedup authority. Runs first in the effect transaction: a concurrent copy of the same key blocks on
     * the primary key until this transaction ends, then sees the row (duplicate) or inserts it (we rolled back).
     * Several messages at once (group commit): $1 group, then arrays $2 keys (distinct), $3 message ids,
     * $4 topics, $5 partitions, $6 offsets, $7 content digests (hex or null), $8 the keys their dead letters
     * would have (null: a replay, not parked by its open dead letter). Inserted in key order (a fixed lock order between
     * concurrent batches); returns the keys inserted. Digests go as hex text, which every driver
     * (node-postgres, PGlite) passes in an array the same way, and are stored as 16 bytes. The dead-letter
     * probe is one lookup in the partial unique index dead_letter_open.
     */
    inboxInsertMany: `
      insert into ${s}.inbox (consumer_group, idempotency_key, message_id, topic, msg_partition, msg_offset, content_digest)
      select $1, r.k, r.id, r.topic, r.part, r.off, decode(r.digest, 'hex')
      from unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::text[], $8::text[])
        as r(k, id, topic, part, off, digest, dead_key)
      where r.dead_key is null
         or not exists (select 1 from ${s}.dead_letter d where d.consumer_group = $1 and d.idempotency_key = r.dead_key and d.status = 'dead')
      order by r.k
      on conflict (consumer_group, idempotency_key) do nothing
      returning idempotency_key`,

    /**
     * Why the insert above left keys out: $1 group, $2 keys, $3 their dead-letter keys (or null). The digest
     * applied under a key found present (dead = false), or an open dead letter of a key (dead = true). Only run when some key was
     * left out, so new messages never pay for it. A statement of its own, after the insert: it sees a row a
     * concurrent transaction committed while the insert waited on it, which the insert's own snapshot would not.
     */
    inboxDigests: `
      select idempotency_key, encode(content_digest, 'hex') as digest, false as dead from ${s}.inbox
      where consumer_group = $1 and idempotency_key = any($2::text[])
      union all
      select r.k, null, true from unnest($2::text[], $3::text[]) as r(k, dead_key)
      where exists (select 1 from ${s}.dead_letter d where d.consumer_group = $1 and d.idempotency_key = r.dead_key and d.status = 'dead')`,

    /** $1 group, $2 keys: rows claimed earlier in the same transaction whose effect will not be applied. */
    inboxDeleteMany: `delete from ${s}.inbox where consumer_group = $1 and idempotency_key = any($2::text[])`,

    /** $1 group, $2 key. Autocommit read used by tools and tests; the consumer itself decides in the transaction. */
    /** A row under key $2 whose effect is this message's: digests compared where both are known ($3 hex or null). */
    inboxContains: `
      select 1 as found from ${s}.inbox
      where consumer_group = $1 and idempotency_key = $2
        and ($3::text is null or content_digest is null or content_digest = decode($3, 'hex'))`,

    /** Deletes up to $3 rows of group $1 older than $2 ms. Returns the number deleted. */
    inboxCleanup: `
      with doomed as (
        select consumer_group, idempotency_key from ${s}.inbox
        where consumer_group = $1 and processed_at < now() - $2 * interval '1 millisecond'
        limit $3
      )
      , gone as (
        delete from ${s}.inbox i using doomed d
        where i.consumer_group = d.consumer_group and i.idempotency_key = d.idempotency_key
        returning 1
      )
      select count(*)::int as deleted from gone`,

    /**
     * First starts of delivered records, many in one statement: inserts a mark with count 1, or reuses a
     * mark left at 0 by an abandoned or failed start. Returns the rows marked, with the attempts of each that
     * failed before (a record redelivered after a crash goes on from there); a record missing from the answer
     * already has an unfinished start (it is a suspect). $1 group, $2 topics, $3 partitions, $4 offsets, $5
     * message ids; no (topic, partition, offset) twice.
     *
     * Committed without waiting for the WAL flush (synchronous_commit off for this statement's own
     * transaction): a mark exists to survive the consumer process dying, which it does once Postgres has
     * it; only a Postgres crash in the next ~200 ms could lose it, and that costs one uncounted start.
     */
    attemptFirstStarts: `
      insert into ${s}.consumer_attempt (consumer_group, topic, msg_partition, msg_offset, message_id, started)
      select $1, r.topic, r.part, r.off, r.id, 1
      from unnest($2::text[], $3::int[], $4::bigint[], $5::text[]) as r(topic, part, off, id),
           (select set_config('synchronous_commit', 'off', true)) as async_commit
      on conflict (consumer_group, topic, msg_partition, msg_offset)
      do update set started = 1, last_started_at = now() where ${s}.consumer_attempt.started = 0
      returning topic, msg_partition, msg_offset::text, failed`,

    /** Counts one more start of a suspect; returns the new count. $1 group, $2 topic, $3 partition, $4 offset, $5 message id. */
    attemptStart: `
      insert into ${s}.consumer_attempt (consumer_group, topic, msg_partition, msg_offset, message_id, started)
      values ($1, $2, $3, $4, $5, 1)
      on conflict (consumer_group, topic, msg_partition, msg_offset)
      do update set started = ${s}.consumer_attempt.started + 1, last_started_at = now()
      returning started, failed`,

    /**
     * Takes back starts that ended without a crash (a failed attempt, an attempt out of turn, abandoned on
     * revoke or stop), many in one statement; a record listed twice is taken back twice. A failed attempt
     * also leaves its number ($5, 0 for the others), the most a record has failed. $1 group, $2 topics, $3
     * partitions, $4 offsets.
     */
    attemptRelease: `
      update ${s}.consumer_attempt a set started = greatest(a.started - r.n, 0), failed = greatest(a.failed, r.failed)
      from (
        select topic, part, off, count(*)::int as n, max(failed)::int as failed
        from unnest($2::text[], $3::int[], $4::bigint[], $5::int[]) as u(topic, part, off, failed)
        group by topic, part, off
      ) r
      where a.consumer_group = $1 and a.topic = r.topic and a.msg_partition = r.part and a.msg_offset = r.off`,

    /** Marks below a committed offset can never be delivered again: $1 group, $2 topic, $3 partition, $4 committed offset. */
    attemptCleanup: `
      delete from ${s}.consumer_attempt
      where consumer_group = $1 and topic = $2 and msg_partition = $3 and msg_offset < $4`,

    /**
     * Records a dead letter unless the same key is already dead (a redelivery or duplicate copy).
     * Returns the row's id and whether its copy on the DLQ topic was acknowledged already.
     * `open_row` first waits for a replay that holds the key's open row while it sends the copy (ON
     * CONFLICT does not wait for a row lock): the replayed copy failing again before that replay commits
     * then finds the row replayed and opens a new one, instead of taking the row being closed for its own.
     * The insert reads `open_row`, so it runs after it.
     */
    deadLetterInsert: `
      with open_row as materialized (
        select id from ${s}.dead_letter where consumer_group = $1 and idempotency_key = $2 and status = 'dead' for update
      ), ins as (
        insert into ${s}.dead_letter (consumer_group, idempotency_key, message_id, topic, msg_partition, msg_offset, msg_key,
          msg_type, headers, payload, error_code, error, stack, attempts, first_failure_at, last_failure_at, details)
        select $1::text, $2::text, $3::text, $4::text, $5::int, $6::bigint, $7::text, $8::text, $9::jsonb, $10::bytea, $11::text,
          $12::text, $13::text, $14::int, $15::timestamptz, $16::timestamptz, $17::jsonb
        from (select count(*) from open_row) waited
        on conflict (consumer_group, idempotency_key) where status = 'dead' do nothing
        returning id, published_at, copy_error, true as inserted
      )
      select id::text, published_at, copy_error, inserted from ins
      union all
      select id::text, published_at, copy_error, false from ${s}.dead_letter
      where consumer_group = $1 and idempotency_key = $2 and status = 'dead' and not exists (select 1 from ins)`,

    deadLetterPublished: `update ${s}.dead_letter set published_at = now() where id = $1`,

    /** $1 id, $2 why the topic refused the copy for good: the dead letter stays in this table alone. */
    deadLetterCopyRejected: `update ${s}.dead_letter set copy_error = $2 where id = $1`,

    /** $1 status or null, $2 topic or null, $3 group or null, $4 limit, $5 id below (paging) or null. */
    deadLetterList: `
      select id::text, consumer_group, topic, msg_partition, msg_offset::text, msg_key, msg_type, message_id, error_code, error,
             attempts, status, created_at, last_failure_at, replay_count
      from ${s}.dead_letter
      where ($1::text is null or status = $1) and ($2::text is null or topic = $2) and ($3::text is null or consumer_group = $3)
        and ($5::bigint is null or id < $5)
      order by id desc
      limit $4`,

    deadLetterGet: `
      select id::text, consumer_group, idempotency_key, message_id, topic, msg_partition, msg_offset::text, msg_key, msg_type,
             headers, payload, error_code, error, stack, attempts, first_failure_at, last_failure_at, status, published_at,
             created_at, resolved_at, resolved_by, replay_count, details, copy_error
      from ${s}.dead_letter where id = $1`,

    /** Locks the row for a replay, so a consumer re-dead-lettering the replayed copy waits for the outcome. */
    deadLetterLock: `select id::text, topic, msg_key, headers, payload, status from ${s}.dead_letter where id = $1 for update`,

    deadLetterReplayed: `
      update ${s}.dead_letter
      set status = 'replayed', replay_count = replay_count + 1, resolved_at = now(), resolved_by = $2
      where id = $1`,

    /** Only an open dead letter can be discarded; returns the row when it was. */
    deadLetterDiscard: `
      update ${s}.dead_letter set status = 'discarded', resolved_at = now(), resolved_by = $2
      where id = $1 and status = 'dead'
      returning id::text`,

    /** Offsets stored with the effect (P10): $1 group, $2 topic, $3 partition, $4 next offset. Never moves back. */
    offsetStore: `
      insert into ${s}.consumer_offset (consumer_group, topic, msg_partition, next_offset)
      values ($1, $2, $3, $4)
      on conflict (consumer_group, topic, msg_partition)
      do update set next_offset = greatest(${s}.consumer_offset.next_offset, excluded.next_offset), updated_at = now()`,

    /** $1 group, $2 topics. */
    offsetLoad: `
      select topic, msg_partition, next_offset::text from ${s}.consumer_offset
      where consumer_group = $1 and topic = any($2::text[])`,
  };
}

export type InboxSql = ReturnType<typeof inboxSql>;
