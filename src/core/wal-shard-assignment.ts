/**
 * Which live relay should read which WAL shard (docs/wal-relay.md, Shards): a fair share for each, moving
 * as few shards as possible (as Kafka's cooperative-sticky assignor does). Every relay computes it alone
 * from what the server says (the live members, and who reads each slot now), so it is a pure function of
 * those: the same input gives every relay the same answer.
 *
 * Each of M members gets floor(N/M) shards, and N mod M of them one more. A shard stays with the member
 * reading it while that member is within its share; the rest go, in shard order, to the member with the
 * fewest (ties: the smaller id). A newcomer thus takes shards only from members above their share.
 */
export function assignShards(
  shards: ReadonlyArray<{ shard: number; holder: string | null }>,
  members: readonly string[],
): Map<number, string> {
  const live = [...new Set(members)].sort();
  const owners = new Map<number, string>();
  if (live.length === 0) return owners;
  const base = Math.floor(shards.length / live.length);
  let extra = shards.length % live.length;
  const count = new Map(live.map((m) => [m, 0]));
  const ordered = [...shards].sort((a, b) => a.shard - b.shard);
  for (const { shard, holder } of ordered) {
    const member = holder === null ? undefined : memberNamed(holder, live);
    if (member === undefined) continue;
    const n = count.get(member) as number;
    if (n < base || (n === base && extra > 0)) {
      if (n === base) extra--;
      owners.set(shard, member);
      count.set(member, n + 1);
    }
  }
  for (const { shard } of ordered) {
    if (owners.has(shard)) continue;
    let best = live[0] as string;
    for (const m of live) if ((count.get(m) as number) < (count.get(best) as number)) best = m;
    owners.set(shard, best);
    count.set(best, (count.get(best) as number) + 1);
  }
  return owners;
}

/**
 * The member a slot's reader names. PostgreSQL keeps 63 bytes of an application_name, so a longer
 * instance id (a long host name) is matched by that prefix.
 */
export function memberNamed(holder: string, members: readonly string[]): string | undefined {
  if (members.includes(holder)) return holder;
  if (Buffer.byteLength(holder) < 63) return undefined;
  return members.find((m) => m.startsWith(holder));
}
