import { walShardExpression } from '../../../core/wal-shard.ts';
import { inStreamRows } from '../stream-sent-sql.ts';
import { handOverStatement } from './wal-sql.ts';

/**
 * Every statement of the WAL relay's shards (docs/wal-relay.md, Shards), in one place. `s` is the validated,
 * quoted schema; publication names are validated identifiers; the shard count and numbers are integers
 * checked by `walShardExpression`.
 */
export function walShardSql(s: string) {
  // The row filter keeps a shard's slot to its keys; `publish = 'insert'` is what lets a row filter name a
  // column outside the replica identity, and keeps the relay's updates and retention's deletes out.
  const createPublication = (publication: string, shard: number, shards: number) =>
    `create publication "${publication}" for table ${s}.outbox where (${walShardExpression('msg_key', shard, shards)}) with (publish = 'insert')`;
  const dropPublication = (publication: string) => `drop publication if exists "${publication}"`;

  // Missing before migration 18: callers treat "undefined_table" as "no shards".
  const shards = `select shard, shards, slot, publication from ${s}.wal_shard order by shard`;
  // Serialises --create-slot runs and shard-count changes against one another.
  const lockShards = `lock table ${s}.wal_shard in exclusive mode`;
  const insertShard = `insert into ${s}.wal_shard (shard, shards, slot, publication) values ($1, $2, $3, $4)`;
  const deleteShards = `delete from ${s}.wal_shard`;

  // Each shard's slot as the server sees it, with who reads it: the reader's replication connection names
  // its relay instance in application_name.
  const shardSlots = `
    select w.shard, w.slot, coalesce(r.active, false) as active, r.slot_name is not null as exists,
           coalesce(r.wal_status = 'lost', false) as lost,
           (select a.application_name from pg_stat_activity a where a.pid = r.active_pid) as holder
    from ${s}.wal_shard w left join pg_replication_slots r on r.slot_name = w.slot
    order by w.shard`;

  // Same hand-over as the single slot's (wal-sql.ts), limited to the keys of the shards made now: rows
  // committed before a shard's slot existed are not in its stream (in the insert-only mode also rows inserted
  // for an earlier slot's stream that no batch records). Other shards' rows are left to their own slots. One
  // statement for all of them, counted per shard (`shard`, `n`): each statement hashes every listed seq_id.
  const handOver = (made: number[], shards: number) => {
    if (made.length === 0) throw new RangeError('no shard to hand over');
    // walShardExpression checks every number; `shardOf` is the same mapping without its comparison.
    const keys = made.map((shard) => walShardExpression('o.msg_key', shard, shards));
    return handOverStatement(s, 'handed to the polling path when the WAL slot was created', {
      pending: true,
      keys: `(${keys.join(' or ')})`,
      shardOf: walShardExpression('o.msg_key', 0, shards).replace(/ = 0$/, ''),
    });
  };

  // The slots whose hand-over committed (migration 20).
  const recordedSlots = `select case when slot_name like 'insert-only:%' then substr(slot_name, 13) else slot_name end as slot_name from ${s}.wal_slot`;

  // Changing the shard count moves keys between slots; allowed only with nothing left to stream (rows
  // inserted for the stream and not yet recorded as sent included).
  // Two counts of disjoint rows, so that `inStreamRows` stands at the top of its WHERE (an anti join).
  const unsent = `select (
      (select count(*) from ${s}.outbox o where o.state <> 1 and o.state <> 3)
      + (select count(*) from ${s}.outbox o where ${inStreamRows(s, 'o')})
    )::int as n`;

  // Membership: the caller's row is refreshed, members unseen for the timeout are removed, and the live
  // ones are returned (the caller's own row is added by the caller: a statement does not see its own writes).
  const heartbeat = `
    with up as (
      insert into ${s}.wal_member (member, seen_at) values ($1, now())
      on conflict (member) do update set seen_at = now()
    ), gone as (
      delete from ${s}.wal_member where seen_at < now() - $2 * interval '1 millisecond' and member <> $1
    )
    select m.member, (extract(epoch from m.seen_at) * 1000)::float8 as seen_ms, (extract(epoch from now()) * 1000)::float8 as now_ms
    from (select 1) one
    left join ${s}.wal_member m on m.member <> $1 and m.seen_at >= now() - $2 * interval '1 millisecond'`;
  const leave = `delete from ${s}.wal_member where member = $1`;

  return {
    createPublication,
    dropPublication,
    shards,
    lockShards,
    insertShard,
    deleteShards,
    shardSlots,
    handOver,
    recordedSlots,
    unsent,
    heartbeat,
    leave,
  };
}
