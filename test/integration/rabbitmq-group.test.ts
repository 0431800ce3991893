import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { RabbitMqAdmin } from '../../src/adapters/rabbitmq/rabbitmq-admin.ts';
import { RabbitMqPublisher } from '../../src/adapters/rabbitmq/rabbitmq-publisher.ts';
import { RabbitMqSubscriber } from '../../src/adapters/rabbitmq/rabbitmq-subscriber.ts';
import type { IncomingRecord } from '../../src/core/envelope.ts';
import type { Subscription } from '../../src/ports/transport.ts';
import { waitFor } from '../helpers/wait-for.ts';

const RABBITMQ_URL = process.env.ZL_TEST_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const execFileAsync = promisify(execFile);
const FAST = { heartbeatIntervalMs: 100, sessionTimeoutMs: 1_500, offsetRetentionMs: 600_000 } as const;

// Run as `node rabbitmq-group.test.ts worker <prefix> <topic> <group>`: the member the crash test
// SIGKILLs. It prints each record it gets, commits the middle of each partition once it has `expect`
// records, says so, and waits to be killed.
if (process.argv[2] === 'worker') {
  const [, topic, groupId, expect] = process.argv.slice(3) as [string, string, string, string];
  const records: IncomingRecord[] = [];
  let committing = false;
  const sub = await new RabbitMqSubscriber({ url: RABBITMQ_URL, ...FAST }).subscribe({
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
} else {
  describe('RabbitMQ consumer group under members that crash or leave', () => {
    test("a SIGKILLed member's partitions go to the next owner from the committed offset, in order", { timeout: 60_000 }, async () => {
      const env = await setup(3);
      try {
        const values = await env.publishKeyed(60, 6);
        assert.equal(new Set(values).size, 60);
        const worker = spawn(process.execPath, [import.meta.filename, 'worker', env.prefix, env.topic, env.group, String(values.length)], {
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

        // The dead member's connection, and with it its lock queues, ended with the process.
        const survivor = await env.member();
        await waitFor(() => [...committed].every(([p, from]) => survivor.records.some((r) => r.partition === p && r.offset === from)), {
          timeoutMs: 30_000,
          what: "the survivor to take over the dead member's partitions",
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
      const env = await setup(6);
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

    test('a member whose connection the broker closes mid-stream delivers every record, keys in order', { timeout: 120_000 }, async () => {
      const env = await setup(3);
      try {
        const timeline: IncomingRecord[] = [];
        await env.member({ onRecords: (records) => timeline.push(...records) });
        const sent: string[] = [];
        for (let round = 0; round < 5; round++) {
          sent.push(...(await env.publishKeyed(100, 10, round)));
          // Close the member's connection on the broker side while it reads: its lock queues and
          // consumers go with it, and whatever it had not committed must come again.
          const pid = await waitFor(() => connectionPid(`zeroloss-${env.prefix}-`), {
            timeoutMs: 30_000,
            what: "the member's connection to be back",
          });
          await execFileAsync('rabbitmqctl', ['close_connection', pid, 'zeroloss test: connection closed on purpose']);
        }
        await waitFor(() => sent.every((v) => timeline.some((r) => r.value.toString() === v)), {
          timeoutMs: 60_000,
          what: `all ${sent.length} records (have ${new Set(timeline.map((r) => r.value.toString())).size})`,
        });
        assertKeyOrder(timeline);
      } finally {
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

async function setup(partitions: number) {
  const prefix = `zl-it-${randomBytes(4).toString('hex')}`;
  const topic = `${prefix}-events`;
  const group = `${prefix}-group`;
  const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
  await admin.createTopic(topic, partitions);
  const publisher = new RabbitMqPublisher({ url: RABBITMQ_URL });
  // The client id names the members' connections (`zeroloss-<prefix>-…`), so a test can find and close them.
  const subscriber = new RabbitMqSubscriber({ url: RABBITMQ_URL, clientId: prefix, ...FAST });
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
      await publisher.close();
      await admin.deleteTopic(topic);
      await admin.deleteGroupOffsets(group, topic, partitions);
      await admin.close();
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

/** The broker's pid of the connection whose name starts with `name`, via rabbitmqctl (the broker is local). */
async function connectionPid(name: string): Promise<string | undefined> {
  const { stdout } = await execFileAsync('rabbitmqctl', ['list_connections', '--quiet', '--no-table-headers', 'pid', 'client_properties']);
  const line = stdout.split('\n').find((l) => l.includes(name));
  return line?.split('\t')[0]?.trim();
}
