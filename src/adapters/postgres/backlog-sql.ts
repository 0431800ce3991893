/**
 * The statements of the degrade switches and the forward record (migration 014), in one place. `s` is the
 * validated, quoted schema name; values are always parameters.
 */
export function backlogSql(s: string) {
  const forwardColumns = `id::text, started_at, finished_at, from_topic, to_topic, consumer_group, to_partitions, ranges,
    planned::text, forwarded::text, error, again_of::text, actor, reason`;
  return {
    switches: `select name, is_on, since, changed_by, reason from ${s}.degrade_switch order by name`,

    /**
     * Sets switch $1 to $2 by $3 for reason $4, and audits the change with details $5 — in one statement, so
     * no change goes unaudited. Setting a switch to what it is changes nothing: the upsert's WHERE skips the
     * row (it still locks it, so two people flipping one switch at once are ordered), and the last SELECT
     * returns the row as it stands with changed = false.
     */
    setSwitch: `
      with up as (
        insert into ${s}.degrade_switch as d (name, is_on, changed_by, reason) values ($1, $2, $3, $4)
        on conflict (name) do update set is_on = excluded.is_on, since = now(), changed_by = excluded.changed_by, reason = excluded.reason
        where d.is_on is distinct from excluded.is_on
        returning d.name, d.is_on, d.since, d.changed_by, d.reason
      ), audited as (
        insert into ${s}.operation_audit (actor, action, subject, reason, details)
        select $3, case when $2 then 'backlog.degrade.on' else 'backlog.degrade.off' end, 'switch:' || $1, $4, $5::jsonb from up
      )
      select name, is_on, since, changed_by, reason, true as changed from up
      union all
      select name, is_on, since, changed_by, reason, false from ${s}.degrade_switch
      where name = $1 and not exists (select 1 from up)`,

    /** $1 from, $2 to, $3 group, $4 to_partitions, $5 ranges, $6 planned, $7 again_of, $8 actor, $9 reason. */
    startForward: `
      insert into ${s}.backlog_forward (from_topic, to_topic, consumer_group, to_partitions, ranges, planned, again_of, actor, reason)
      values ($1, $2, $3, $4, $5::jsonb, $6, $7::bigint, $8, $9)
      returning id::text`,
    finishForward: `update ${s}.backlog_forward set finished_at = now(), forwarded = $2, error = $3 where id = $1::bigint`,
    forwardRun: `select ${forwardColumns} from ${s}.backlog_forward where id = $1::bigint`,
    /** The newest $1 runs, of source topic $2 when given. */
    forwardRuns: `
      select ${forwardColumns} from ${s}.backlog_forward f
      where ($2::text is null or f.from_topic = $2)
      order by f.id desc limit $1`,
  };
}

export type BacklogSql = ReturnType<typeof backlogSql>;
