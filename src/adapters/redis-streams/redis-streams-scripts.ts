import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * The Lua scripts of the Redis Streams transport, one per atomic operation, each with its keys,
 * arguments and reply documented above it. Run with `runScript` (EVALSHA, falling back to EVAL once).
 */
export interface Script {
  readonly lua: string;
  readonly sha: string;
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/**
 * Appends records in array order and stops a key at its first failure, so a later record of the key
 * can never land behind a hole (a pipeline of XADDs would go on after an out-of-memory error).
 * KEYS: the partition streams of the call. ARGV[1]: record count n; then per record: stream index into
 * KEYS (1-based), key, headers JSON, value. Reply: per record the entry id, '!held' (an earlier record of
 * its key failed in this call; not attempted), '!missing' (the stream does not exist) or '!<error>'.
 * NOMKSTREAM: a deleted topic is a failure, never a stream silently created again.
 */
export const PUBLISH = script(`
local n = tonumber(ARGV[1])
local failed = {}
local out = {}
for i = 0, n - 1 do
  local at = 2 + i * 4
  local slot = ARGV[at] .. '\\0' .. ARGV[at + 1]
  if failed[slot] then
    out[i + 1] = '!held'
  else
    local id = redis.pcall('XADD', KEYS[tonumber(ARGV[at])], 'NOMKSTREAM', '0-*', 'k', ARGV[at + 1], 'h', ARGV[at + 2], 'v', ARGV[at + 3])
    if type(id) == 'table' and id.err then
      failed[slot] = true
      out[i + 1] = '!' .. id.err
    elseif not id then
      failed[slot] = true
      out[i + 1] = '!missing'
    else
      out[i + 1] = id
    end
  end
end
return out`);

/**
 * Renews (or, with ARGV[3] = '', ends) a member's session and drops members whose session ran out, by
 * the server's clock so members' clocks need not agree.
 * KEYS[1] members sorted set, KEYS[2] member topics hash. ARGV[1] member id, ARGV[2] session ms,
 * ARGV[3] the member's topics as JSON ('' to leave). Reply: flat [member id, topics JSON, ...] of the
 * live members. Both keys expire with the last session, so an abandoned group leaves nothing behind.
 */
export const HEARTBEAT = script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, m in ipairs(dead) do redis.call('HDEL', KEYS[2], m) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  local session = tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], now + session, ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], session * 2)
  redis.call('PEXPIRE', KEYS[2], session * 2)
end
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  out[#out + 1] = m
  out[#out + 1] = redis.call('HGET', KEYS[2], m) or '[]'
end
return out`);

/**
 * Takes or renews partition leases. A lease held by another member is never touched; with ARGV[3] =
 * 'renew' a lease that expired is not taken again either (someone may have owned it meanwhile, so the
 * caller must start over from the group's pending entries).
 * KEYS: lease keys. ARGV[1] member id, ARGV[2] lease ms, ARGV[3] 'take' or 'renew'. Reply: per key 1 if
 * the member holds it now, else 0.
 */
export const LEASE = script(`
local out = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  elseif not holder and ARGV[3] == 'take' then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out`);

/**
 * Acknowledges entries, but only while the member still holds the partition's lease: after a takeover
 * the entries belong to the new owner's reading, and acknowledging them here could skip one it has not
 * applied. KEYS[1] lease, KEYS[2] stream. ARGV[1] member id, ARGV[2] group, ARGV[3..] entry ids.
 * Reply: the number acknowledged, or -1 if the lease is not the member's.
 */
export const ACK = script(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if #ARGV < 3 then return 0 end
return redis.call('XACK', KEYS[2], ARGV[2], unpack(ARGV, 3))`);

/**
 * Reads new entries (XREADGROUP '>') of the partitions whose lease the member holds, checking the lease in
 * the same step: a read that reaches the server after the lease ran out or was taken over (delayed on the
 * way, or sent by a member that was cut off) takes nothing into this member's pending list, where the new
 * owner, having claimed the list once when it took over, would never look again. XREADGROUP cannot block
 * in a script; the caller waits for new entries with a plain XREAD from the id this returns.
 * KEYS: per partition its lease, then its stream. ARGV[1] member id, ARGV[2] group, ARGV[3] most entries
 * per stream. Reply: per partition {0} (the lease is not the member's: nothing read), {1, entries} (as
 * XREADGROUP gives them) or {2, the group's last-delivered id} (nothing new).
 */
export const READ = script(`
local out = {}
for i = 1, #KEYS, 2 do
  local j = (i + 1) / 2
  if redis.call('GET', KEYS[i]) ~= ARGV[1] then
    out[j] = {0}
  else
    local r = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[1], 'COUNT', ARGV[3], 'STREAMS', KEYS[i + 1], '>')
    if r and r[1] and #r[1][2] > 0 then
      out[j] = {1, r[1][2]}
    else
      local last = '0-0'
      for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[i + 1])) do
        local name, id
        for k = 1, #g, 2 do
          if g[k] == 'name' then name = g[k + 1] elseif g[k] == 'last-delivered-id' then id = g[k + 1] end
        end
        if name == ARGV[2] then last = id end
      end
      out[j] = {2, last}
    end
  end
end
return out`);

/** KEYS: lease keys. ARGV[1] member id. Deletes only leases the member still holds. Reply: count deleted. */
export const RELEASE = script(`
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then n = n + redis.call('DEL', key) end
end
return n`);

/**
 * Removes a member's consumer from a stream's group once it has no pending entries: a consumer with
 * pending entries is their only record, and deleting it would drop them unacknowledged.
 * KEYS[1] stream. ARGV[1] group, ARGV[2] consumer. Reply: 1 if removed, else 0.
 */
export const DROP_CONSUMER = script(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if not ok or #pending > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1`);

/**
 * Creates the streams of a topic (empty: a group is created with MKSTREAM and dropped again) and then
 * the topic's partition count, so a publisher that sees the count finds every stream. A count only grows.
 * KEYS[1] topic key, KEYS[2..] the streams. ARGV[1] partition count. Reply: the count now in force.
 */
export const CREATE_TOPIC = script(`
local wanted = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= wanted then return current end
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('XGROUP', 'CREATE', KEYS[i], '__zeroloss_create', '$', 'MKSTREAM')
    redis.call('XGROUP', 'DESTROY', KEYS[i], '__zeroloss_create')
  end
end
redis.call('SET', KEYS[1], wanted)
return wanted`);

/**
 * `zeroloss groups delete`: refuses while the group has a live member (by the server's clock, as
 * HEARTBEAT counts them), otherwise destroys the group on each stream that has it and drops its
 * membership and lease keys, all in one step so no member can join half-way.
 * KEYS[1] members sorted set, KEYS[2] member topics hash, then ARGV[2] streams, then the leases.
 * ARGV[1] group id, ARGV[2] stream count. Reply: -1 when a member is live, else the streams whose group went.
 */
export const DELETE_GROUP = script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf') > 0 then return -1 end
local gone = {}
local streams = tonumber(ARGV[2])
for i = 3, 2 + streams do
  if redis.call('EXISTS', KEYS[i]) == 1 and redis.call('XGROUP', 'DESTROY', KEYS[i], ARGV[1]) == 1 then
    gone[#gone + 1] = KEYS[i]
  end
end
for i = 3 + streams, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('DEL', KEYS[1], KEYS[2])
return gone`);

/** Runs a script; with `buffers`, bulk strings in the reply come back as Buffers (entry values are bytes). */
export async function runScript(
  redis: Redis,
  s: Script,
  keys: Array<string | Buffer>,
  args: Array<string | Buffer | number>,
  options: { buffers?: boolean } = {},
): Promise<unknown> {
  const call = (command: string, ...rest: Array<string | Buffer | number>) =>
    options.buffers ? redis.callBuffer(command, ...rest) : redis.call(command, ...rest);
  try {
    return await call('EVALSHA', s.sha, keys.length, ...keys, ...args);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
    return call('EVAL', s.lua, keys.length, ...keys, ...args);
  }
}
