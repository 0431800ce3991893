import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import type { IncomingRecord } from '../../src/core/envelope.ts';
import type { Publisher, Subscriber, Subscription } from '../../src/ports/transport.ts';
import { waitFor } from './wait-for.ts';

/** A fresh namespace on the transport: one topic, made by `open`, and the group name to use on it. */
export interface GroupNamespace {
  /** Unique per namespace; the subscriber's client id, so members' connections are named `zeroloss-<prefix>-…`. */
  prefix: string;
  topic: string;
  group: string;
  publisher: Publisher;
  /** Members' subscriber, with short heartbeats and `clientId: prefix`. */
  subscriber: Subscriber;
  /** Closes the publisher and deletes the topic and whatever the group left on the transport. */
  cleanup(): Promise<void>;
}

/** A transport under the group tests: how to make a namespace and how to break a member's connections. */
export interface GroupTransport {
  name: string;
  /** What a new owner takes over from a dead member, for test titles ("partitions", "pending entries"). */
  takenOver: string;
  open(partitions: number): Promise<GroupNamespace>;
  /** The subscriber of the worker process the crash test SIGKILLs (same settings, no client id). */
  workerSubscriber(prefix: string): Subscriber;
  connectionFault: {
    title: string;
    timeoutMs: number;
    rounds: number;
    recordsPerRound: number;
    drainTimeoutMs: number;
    /** Connections one member holds: each round breaks them all. */
    connectionsPerMember: number;
    /** Breaks the connections of the members named `zeroloss-<prefix>-…` (waiting until they are back); returns how many. */
    breakConnections(prefix: string): Promise<number>;
    close?(): void;
  };
}

/**
 * The consumer-group tests every transport with its own membership passes: a SIGKILLed member, members
 * joining and leaving mid-stream, and a member whose connections break mid-stream. `file` is the calling
 * test file: the crash test runs it again as `node <file> worker <prefix> <topic> <group> <expect>`, the
 * member it SIGKILLs, which prints each record it gets, commits the middle of each partition once it
 * has `expect` records, says so, and waits to be killed.
 */
export async function groupUnderChurn(transport: GroupTransport, file: string): Promise<void> {
  if (process.argv[2] === 'worker') {
    const [prefix, topic, groupId, expect] = process.argv.slice(3) as [string, string, string, string];
    const records: IncomingRecord[] = [];
    let committing = false;
    const sub = await transport.workerSubscriber(prefix).subscribe({
      groupId,
      topics: [topic],
      onRecords: (batch) => {
        records.push(...batch.records);
        if (committing || new Set(records.map((r) => r.value.toString())).size < Number(expect)) return;
        committing = true;
        const middle = new Map<number, bigint>();
        for (const [partition, list] of byPartition(records)) middle.set(partition, list[Math.floor(list.length / 2)]!.offset);
        const uncommitted = [...new Set(records.filter((r) => r.offset >= middle.get(r.partition)!).map((r) => r.value.toString()))];
        void sub.commit([...middle].map(([partition, offset]) => ({ topic, partition, offset }))).then(() => {
          const committed = Object.fromEntries([...middle].map(([p, o]) => [p, String(o)]));
          process.stdout.write(`${JSON.stringify({ committed, uncommitted })}\n`);
        });
      },
    });
    return;
  }
  describe(`${transport.name} consumer group under members that crash or leave`, () => {
    test(`a SIGKILLed member's ${transport.takenOver} go to the next owner from the committed offset, in order`, {
      timeout: 60_000,
    }, async () => {
      const env = await setup(transport, 3);
      try {
        const values = await env.publishKeyed(60, 6);
        assert.equal(new Set(values).size, 60);
        const worker = spawn(process.execPath, [file, 'worker', env.prefix, env.topic, env.group, String(values.length)], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        const lines = createInterface({ input: worker.stdout! });
        const { committed, uncommitted } = await new Promise<{ committed: Map<number, bigint>; uncommitted: string[] }>(
          (resolve, reject) => {
            lines.on('line', (line) => {
              const parsed = JSON.parse(line) as { committed?: Record<string, string>; uncommitted: string[] };
              if (!parsed.committed) return;
              const committed = new Map(Object.entries(parsed.committed).map(([p, o]) => [Number(p), BigInt(o)]));
              resolve({ committed, uncommitted: parsed.uncommitted });
            });
            worker.on('exit', (code) => reject(new Error(`worker exited with ${code} before committing`)));
          },
        );
        worker.kill('SIGKILL');

        // What the dead member held passes to the survivor once the transport notices it died.
        const survivor = await env.member();
        await waitFor(() => [...committed].every(([p, from]) => survivor.records.some((r) => r.partition === p && r.offset === from)), {
          timeoutMs: 30_000,
          what: `the survivor to take over the dead member's ${transport.takenOver}`,
        });
        for (const [partition, from] of committed) {
          const offsets = survivor.records.filter((r) => r.partition === partition).map((r) => r.offset);
          assert.equal(offsets.sort((x, y) => (x < y ? -1 : 1))[0], from, `partition ${partition} did not restart at its committed offset`);
        }
        await waitFor(() => uncommitted.every((v) => survivor.records.some((r) => r.value.toString() === v)), {
          timeoutMs: 30_000,
          what: 'every uncommitted record',
        });
        assertKeyOrder(survivor.records);
      } finally {
        await env.cleanup();
      }
    });

    test('members joining and leaving mid-stream never own a partition together and lose nothing', { timeout: 90_000 }, async () => {
      const env = await setup(transport, 6);
      try {
        const owners = new Map<number, string>();
        const overlaps: string[] = [];
        const timeline: IncomingRecord[] = [];
        const member = (name: string) =>
          env.member({
            onRecords: (records) => timeline.push(...records),
            onAssign: (ps) => {
              for (const p of ps) {
                const owner = owners.get(p.partition);
                if (owner !== undefined) overlaps.push(`${name} got ${p.partition} while ${owner} held it`);
                owners.set(p.partition, name);
              }
            },
            onRevoke: (ps) => {
              for (const p of ps) if (owners.get(p.partition) === name) owners.delete(p.partition);
            },
          });
        const a = await member('a');
        const sent: string[] = [];
        const publishRounds = async (from: number, to: number) => {
          for (let round = from; round < to; round++) sent.push(...(await env.publishKeyed(20, 10, round)));
        };
        await publishRounds(0, 10);
        const b = await member('b');
        await publishRounds(10, 20);
        await waitFor(() => timeline.length >= 100, { timeoutMs: 30_000, what: 'deliveries to get going' });
        const c = await member('c');
        await publishRounds(20, 30);
        // a leaves while records are still flowing to it.
        await a.close();
        await publishRounds(30, 40);
        await waitFor(() => sent.every((v) => timeline.some((r) => r.value.toString() === v)), {
          timeoutMs: 45_000,
          what: `all ${sent.length} records across the members`,
        });
        assert.deepEqual(overlaps, [], 'a partition was owned by two members at once');
        assertKeyOrder(timeline);
        await b.close();
        await c.close();
      } finally {
        await env.cleanup();
      }
    });

    test(transport.connectionFault.title, { timeout: transport.connectionFault.timeoutMs }, async () => {
      const fault = transport.connectionFault;
      const env = await setup(transport, 3);
      try {
        const timeline: IncomingRecord[] = [];
        await env.member({ onRecords: (records) => timeline.push(...records) });
        const sent: string[] = [];
        let broken = 0;
        for (let round = 0; round < fault.rounds; round++) {
          sent.push(...(await env.publishKeyed(fault.recordsPerRound, 10, round)));
          // Break the member's connections while it reads: replies in flight are lost with them, and
          // whatever it had not committed must come again.
          broken += await fault.breakConnections(env.prefix);
        }
        assert.equal(broken, fault.rounds * fault.connectionsPerMember, "every round broke all the member's connections");
        await waitFor(() => sent.every((v) => timeline.some((r) => r.value.toString() === v)), {
          timeoutMs: fault.drainTimeoutMs,
          what: `all ${sent.length} records (have ${new Set(timeline.map((r) => r.value.toString())).size})`,
        });
        assertKeyOrder(timeline);
      } finally {
        fault.close?.();
        await env.cleanup();
      }
    });
  });
}

interface Member {
  sub: Subscription;
  records: IncomingRecord[];
  close(): Promise<void>;
}

async function setup(transport: GroupTransport, partitions: number) {
  const { prefix, topic, group, publisher, subscriber, cleanup } = await transport.open(partitions);
  const members: Member[] = [];
  const seq = new Map<string, number>();
  return {
    prefix,
    topic,
    group,
    /** Publishes `n` records over `keys` keys; values are `<key>:<n-th of the key>`. */
    async publishKeyed(n: number, keys: number, round = 0): Promise<string[]> {
      const records = Array.from({ length: n }, (_, i) => {
        const key = `k${(i + round) % keys}`;
        const next = seq.get(key) ?? 0;
        seq.set(key, next + 1);
        return { topic, key, value: Buffer.from(`${key}:${next}`), headers: {} };
      });
      const outcomes = await publisher.publish(records);
      for (const o of outcomes) assert.ok(o.ok, `publish failed: ${o.ok ? '' : o.error.message}`);
      return records.map((r) => r.value.toString());
    },
    /** A member that commits everything it receives right away, as the consumer runtime does once effects commit. */
    async member(
      hooks: {
        onRecords?: (records: IncomingRecord[]) => void;
        onAssign?: (ps: Array<{ topic: string; partition: number }>) => void;
        onRevoke?: (ps: Array<{ topic: string; partition: number }>) => void;
      } = {},
    ): Promise<Member> {
      const records: IncomingRecord[] = [];
      let sub: Subscription | undefined;
      sub = await subscriber.subscribe({
        groupId: group,
        topics: [topic],
        onRecords: (batch) => {
          records.push(...batch.records);
          hooks.onRecords?.(batch.records);
          const last = batch.records[batch.records.length - 1]!;
          void sub?.commit([{ topic, partition: batch.partition, offset: last.offset + 1n }]).catch(() => {});
        },
        onAssign: hooks.onAssign,
        onRevoke: async (ps) => hooks.onRevoke?.(ps),
      });
      const m: Member = { sub, records, close: () => sub!.close() };
      members.push(m);
      return m;
    },
    async cleanup() {
      for (const m of members) await m.close().catch(() => {});
      await cleanup();
    },
  };
}

function byPartition(records: IncomingRecord[]): Map<number, IncomingRecord[]> {
  const out = new Map<number, IncomingRecord[]>();
  for (const r of records) out.set(r.partition, [...(out.get(r.partition) ?? []), r]);
  for (const list of out.values()) list.sort((x, y) => (x.offset < y.offset ? -1 : 1));
  return out;
}

/**
 * In delivery order, no record of a key arrives before every earlier record of that key arrived once
 * (counting from the key's first delivery, which after a takeover is its committed position).
 */
function assertKeyOrder(timeline: IncomingRecord[]): void {
  const highest = new Map<string, number>();
  for (const r of timeline) {
    const [key, n] = r.value.toString().split(':') as [string, string];
    const seen = highest.get(key) ?? Number(n) - 1;
    assert.ok(Number(n) <= seen + 1, `${key}:${n} was delivered before ${key}:${seen + 1}`);
    highest.set(key, Math.max(seen, Number(n)));
  }
}
