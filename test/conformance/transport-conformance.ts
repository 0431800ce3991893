import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import type { IncomingRecord, OutgoingRecord } from '../../src/core/envelope.ts';
import { ZerolossError } from '../../src/core/errors.ts';
import type { PublishOutcome, Publisher, ReceivedBatch, Subscriber, Subscription } from '../../src/ports/transport.ts';
import { waitFor } from '../helpers/wait-for.ts';

/** What a transport gives the suite. Each call of the factory is one isolated test run. */
export interface TransportUnderTest {
  publisher: Publisher;
  subscriber: Subscriber;
  createTopic(topic: string, partitions: number): Promise<void>;
  cleanup(): Promise<void>;
}

/** Generous enough for a real broker's group rebalance; the embedded transport takes milliseconds. */
const WAIT_MS = 45_000;
const TEST_TIMEOUT_MS = 120_000;

/**
 * The behaviour every transport (table log on PGlite and Postgres, Kafka, ...) must show through the
 * Publisher and Subscriber ports. Topic and group names are unique per test, so the suite also runs
 * against a shared broker. Tests wait on observed deliveries, never on time.
 */
export function transportConformance(name: string, factory: () => Promise<TransportUnderTest>): void {
  describe(`transport conformance: ${name}`, () => {
    const run = (title: string, body: (h: Harness) => Promise<void>) =>
      test(title, { timeout: TEST_TIMEOUT_MS }, async () => {
        const h = new Harness(await factory());
        try {
          await body(h);
        } finally {
          await h.close();
        }
      });

    run('delivers every published record at least once to a group, where the publisher said it went', async (h) => {
      const topic = await h.topic(3);
      const records = Array.from({ length: 60 }, (_, i) => h.record(topic, `key-${i % 12}`, `v-${i}`));
      const outcomes: PublishOutcome[] = [];
      for (let i = 0; i < records.length; i += 20) outcomes.push(...(await h.publishOk(records.slice(i, i + 20))));
      const c = await h.consume(h.group(), [topic]);
      await c.waitForValues(records.length);
      outcomes.forEach((outcome, i) => {
        if (!outcome.ok || outcome.partition === undefined || outcome.offset === undefined) return;
        const at = c.records.find((r) => r.partition === outcome.partition && r.offset === outcome.offset);
        assert.ok(at, `record ${i} was reported at ${outcome.partition}/${outcome.offset} but not delivered from there`);
        assert.equal(at.value.toString(), `v-${i}`);
        assert.equal(at.key, records[i]!.key);
        assert.equal(at.topic, topic);
      });
    });

    run('keeps each key in one partition and in publish order', async (h) => {
      const topic = await h.topic(4);
      const keys = Array.from({ length: 10 }, (_, i) => `order-${i}`);
      const seq = new Map(keys.map((k) => [k, 0]));
      for (let call = 0; call < 5; call++) {
        await h.publishOk(
          Array.from({ length: 40 }, (_, i) => {
            const key = keys[(i * 7 + call) % keys.length]!;
            const n = seq.get(key)!;
            seq.set(key, n + 1);
            return h.record(topic, key, `${key}:${n}`);
          }),
        );
      }
      const c = await h.consume(h.group(), [topic]);
      await c.waitForValues(200);
      const byPartition = new Map<number, IncomingRecord[]>();
      for (const r of firstDeliveries(c.records)) byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), r]);
      const partitionOfKey = new Map<string, number>();
      const lastSeq = new Map<string, number>();
      for (const [partition, list] of byPartition) {
        for (let i = 1; i < list.length; i++)
          assert.ok(list[i - 1]!.offset < list[i]!.offset, `partition ${partition} delivered out of offset order`);
        for (const r of list) {
          assert.equal(partitionOfKey.get(r.key) ?? partition, partition, `key ${r.key} appeared in two partitions`);
          partitionOfKey.set(r.key, partition);
          const n = Number(r.value.toString().split(':')[1]);
          assert.equal(n, (lastSeq.get(r.key) ?? -1) + 1, `key ${r.key} out of order`);
          lastSeq.set(r.key, n);
        }
      }
      assert.ok(new Set(partitionOfKey.values()).size > 1, 'ten keys over four partitions should use more than one');
    });

    run('resumes after the committed offset when the group subscribes again', async (h) => {
      const topic = await h.topic(2);
      await h.publishOk(Array.from({ length: 20 }, (_, i) => h.record(topic, `k${i % 5}`, `a-${i}`)));
      const group = h.group();
      const first = await h.consume(group, [topic]);
      await first.waitForValues(20);
      const committed = new Map<number, bigint>();
      for (const [partition, list] of partitions(first.records)) {
        const middle = list[Math.floor(list.length / 2)]!;
        committed.set(partition, middle.offset);
      }
      await first.sub.commit([...committed].map(([partition, offset]) => ({ topic, partition, offset })));
      await first.close();

      await h.publishOk(Array.from({ length: 6 }, (_, i) => h.record(topic, `k${i % 5}`, `b-${i}`)));
      const expected = distinctValues(first.records.filter((r) => r.offset >= committed.get(r.partition)!)) + 6;
      const second = await h.consume(group, [topic]);
      await second.waitForValues(expected);
      for (const r of second.records) {
        const from = committed.get(r.partition);
        if (from !== undefined)
          assert.ok(r.offset >= from, `offset ${r.offset} of partition ${r.partition} is below the committed ${from}`);
      }
      for (const [partition, from] of committed) {
        const offsets = second.records.filter((r) => r.partition === partition).map((r) => r.offset);
        assert.equal(minOffset(offsets), from, `partition ${partition} did not restart at its committed offset`);
      }
    });

    run('redelivers uncommitted records after close and subscribe', async (h) => {
      const topic = await h.topic(2);
      await h.publishOk(Array.from({ length: 10 }, (_, i) => h.record(topic, `k${i}`, `u-${i}`)));
      const group = h.group();
      const first = await h.consume(group, [topic]);
      await first.waitForValues(10);
      await first.close();
      const second = await h.consume(group, [topic]);
      await second.waitForValues(10);
    });

    run('a failed record holds back the later records of its key in the same call; other keys and later calls go', async (h) => {
      const topic = await h.topic(2);
      // Over every transport's record limit (1 MiB by default; Kafka's broker refuses it as too large).
      const tooLarge = { ...h.record(topic, 'held', 'x'), value: Buffer.alloc(1_200_000, 0x61) };
      const outcomes = await h.publisher.publish([
        h.record(topic, 'held', 'before'),
        tooLarge,
        h.record(topic, 'held', 'after-1'),
        h.record(topic, 'other', 'other-1'),
        h.record(topic, 'held', 'after-2'),
      ]);
      assert.equal(outcomes.length, 5, 'one outcome per record');
      const [before, failed, after1, other, after2] = outcomes;
      assert.ok(before?.ok, 'the record before the failure is sent');
      assert.ok(failed && !failed.ok && failed.attempted, 'the oversized record fails, attempted');
      for (const [i, o] of [after1, after2].entries()) {
        assert.ok(o && !o.ok, `later record ${i + 1} of the key is not sent`);
        assert.equal(o.attempted, false, `later record ${i + 1} of the key is held back, never attempted`);
        assert.ok(o.error instanceof ZerolossError, 'held back with a typed error');
      }
      assert.ok(other?.ok, 'a record of another key is not held back');
      // The hold lasts one call: the key's next record in a new call goes, behind nothing of the failed ones.
      await h.publishOk([h.record(topic, 'held', 'next-call')]);
      const c = await h.consume(h.group(), [topic]);
      await waitFor(() => ['before', 'other-1', 'next-call'].every((v) => c.records.some((r) => r.value.toString() === v)), {
        timeoutMs: WAIT_MS,
        what: 'the sent records',
      });
      const held = firstDeliveries(c.records)
        .filter((r) => r.key === 'held')
        .map((r) => r.value.toString().slice(0, 20));
      assert.deepEqual(held, ['before', 'next-call'], "only the key's sent records reach the group, in order");
    });

    run('delivers everything to each of two groups', async (h) => {
      const topic = await h.topic(3);
      const a = await h.consume(h.group(), [topic]);
      const b = await h.consume(h.group(), [topic]);
      await h.publishOk(Array.from({ length: 30 }, (_, i) => h.record(topic, `k${i}`, `g-${i}`)));
      await a.waitForValues(30);
      await b.waitForValues(30);
    });

    run('splits partitions between two members of a group and hands over from the committed offset on close', async (h) => {
      const topic = await h.topic(4);
      const group = h.group();
      const a = await h.consume(group, [topic]);
      const b = await h.consume(group, [topic]);
      await waitFor(() => a.assigned.size > 0 && b.assigned.size > 0 && a.assigned.size + b.assigned.size === 4, {
        timeoutMs: WAIT_MS,
        what: 'both members to own a share of the four partitions',
      });
      assert.deepEqual(
        [...a.assigned].filter((p) => b.assigned.has(p)),
        [],
        'a partition is owned by both members',
      );

      const batch1 = Array.from({ length: 40 }, (_, i) => h.record(topic, `k${i}`, `one-${i}`));
      await h.publishOk(batch1);
      await waitFor(() => distinctValues([...a.records, ...b.records]) >= 40, { timeoutMs: WAIT_MS, what: 'batch 1 across both members' });
      assert.ok(a.records.length > 0 && b.records.length > 0, 'both members received records');
      await a.commitAll(topic);
      await b.commitAll(topic);

      const aPartitions = new Set(a.records.map((r) => r.partition));
      const committedA = new Map([...partitions(a.records)].map(([p, list]) => [p, list[list.length - 1]!.offset + 1n]));
      const batch2 = Array.from({ length: 40 }, (_, i) => h.record(topic, `k${i}`, `two-${i}`));
      await h.publishOk(batch2);
      await waitFor(() => distinctValues([...a.records, ...b.records]) >= 80, { timeoutMs: WAIT_MS, what: 'batch 2 across both members' });
      await b.commitAll(topic);
      const aBatch2 = a.records.filter((r) => r.value.toString().startsWith('two-')).map((r) => r.value.toString());
      const bBefore = b.records.length;

      await a.close();
      await waitFor(() => b.assigned.size === 4, { timeoutMs: WAIT_MS, what: 'the remaining member to take all four partitions' });
      await waitFor(() => aBatch2.every((v) => b.records.some((r) => r.value.toString() === v)), {
        timeoutMs: WAIT_MS,
        what: "the other member to receive a's uncommitted records",
      });
      const takenOver = b.records.slice(bBefore).filter((r) => aPartitions.has(r.partition));
      for (const [partition, from] of committedA) {
        const offsets = takenOver.filter((r) => r.partition === partition).map((r) => r.offset);
        if (offsets.length === 0) continue;
        assert.equal(minOffset(offsets), from, `partition ${partition} was not resumed at its committed offset`);
      }
      assert.ok(
        takenOver.every((r) => !r.value.toString().startsWith('one-')),
        'committed records of the closed member were delivered again',
      );
    });

    run('stops delivery on pause and restarts it on resume', async (h) => {
      const topic = await h.topic(2);
      const paused = await h.consume(h.group(), [topic]);
      const witness = await h.consume(h.group(), [topic]);
      await h.publishOk(Array.from({ length: 5 }, (_, i) => h.record(topic, `k${i}`, `p1-${i}`)));
      await paused.waitForValues(5);
      await witness.waitForValues(5);
      paused.sub.pause();
      await h.publishOk(Array.from({ length: 5 }, (_, i) => h.record(topic, `k${i}`, `p2-${i}`)));
      // The witness group sees the new records: the paused one had every chance to see them too.
      await witness.waitForValues(10);
      assert.equal(distinctValues(paused.records), 5, 'a paused subscription delivered records');
      paused.sub.resume();
      await paused.waitForValues(10);
    });

    run('round-trips keys, headers and binary values byte for byte', async (h) => {
      const topic = await h.topic(2);
      const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const values = [allBytes, randomBytes(4096), Buffer.from([0xff, 0xfe, 0x00, 0x80]), Buffer.from('plain text')];
      const headers = {
        'x-unicode': 'päivää 🚀 ключ',
        'x-empty': '',
        'x-json': '{"a":[1,2],"b":"c"}',
        'x-spaces': '  padded  ',
        'content-type': 'application/octet-stream',
      };
      const keys = ['ключ-🔑', 'plain', 'with space', 'x'.repeat(300)];
      await h.publishOk(values.map((value, i) => ({ topic, key: keys[i]!, value, headers: { ...headers, 'x-index': String(i) } })));
      const c = await h.consume(h.group(), [topic]);
      await waitFor(() => new Set(c.records.map((r) => r.headers['x-index'])).size === values.length, {
        timeoutMs: WAIT_MS,
        what: 'all binary records',
      });
      for (const r of c.records) {
        const i = Number(r.headers['x-index']);
        assert.ok(Buffer.isBuffer(r.value), 'value is a Buffer');
        assert.ok(r.value.equals(values[i]!), `value ${i} changed on its way`);
        assert.equal(r.key, keys[i]);
        assert.deepEqual({ ...r.headers }, { ...headers, 'x-index': String(i) });
      }
    });

    run('carries an empty value and a 500 KiB value', async (h) => {
      const topic = await h.topic(1);
      const large = randomBytes(500 * 1024);
      await h.publishOk([
        { topic, key: 'empty', value: Buffer.alloc(0), headers: {} },
        { topic, key: 'large', value: large, headers: {} },
      ]);
      const c = await h.consume(h.group(), [topic]);
      await waitFor(() => new Set(c.records.map((r) => r.key)).size === 2, { timeoutMs: WAIT_MS, what: 'both records' });
      const empty = c.records.find((r) => r.key === 'empty')!;
      const big = c.records.find((r) => r.key === 'large')!;
      assert.equal(empty.value.length, 0);
      assert.equal(big.value.length, large.length);
      assert.ok(big.value.equals(large), 'the large value changed on its way');
    });

    // The relay's contract: a missing topic fails only its own records, as ZL_TOPIC_UNAVAILABLE (retryable),
    // which the relay backs off without charging an attempt, so the rows flow once someone creates the topic.
    run('reports a missing topic as a retryable ZL_TOPIC_UNAVAILABLE of its own records only', async (h) => {
      const missing = `zl-missing-${randomBytes(4).toString('hex')}`;
      const topic = await h.topic(1);
      const outcomes = await h.publisher.publish([
        { topic: missing, key: 'k', value: Buffer.from('x'), headers: {} },
        h.record(topic, 'k', 'same-key-other-topic'),
      ]);
      assert.equal(outcomes.length, 2);
      const [outcome, other] = outcomes;
      assert.ok(outcome && !outcome.ok, 'publishing to a missing topic succeeded');
      assert.ok(outcome.error instanceof ZerolossError, 'the failure is a ZerolossError');
      assert.equal(outcome.error.code, 'ZL_TOPIC_UNAVAILABLE');
      assert.equal(outcome.error.retryable, true);
      assert.equal(outcome.attempted, true);
      assert.ok(other?.ok, 'a record for an existing topic in the same call was sent');
      await h.publishOk([h.record(topic, 'k', 'after')]);
    });

    run('a failed record holds back the later records of its key', async (h) => {
      const topic = await h.topic(2);
      // Over every transport's default record limit (Kafka's message.max.bytes and the others' 1 MiB), so
      // it fails the same way everywhere, and no broker is left in a state the next test would notice.
      const oversized = { topic, key: 'held', value: randomBytes(3 * 1_048_576), headers: {} };
      const outcomes = await h.publisher.publish([
        h.record(topic, 'other', 'other-before'),
        oversized,
        h.record(topic, 'held', 'held-after'),
        h.record(topic, 'other', 'other-after'),
        h.record(topic, 'held', 'held-after-2'),
      ]);
      assert.equal(outcomes.length, 5, 'one outcome per record');
      const [otherBefore, failed, heldAfter, otherAfter, heldAfter2] = outcomes;
      assert.ok(otherBefore?.ok, 'a record of another key before the failure went through');
      assert.ok(failed && !failed.ok, 'the oversized record was accepted');
      assert.ok(failed.error instanceof ZerolossError, 'the failure is a ZerolossError');
      assert.equal(failed.attempted, true);
      for (const held of [heldAfter, heldAfter2]) {
        assert.ok(held && !held.ok, 'a record behind its key failure was published');
        assert.equal(held.attempted, false, 'a record behind its key failure was attempted');
      }
      assert.ok(otherAfter?.ok, 'a record of another key after the failure was held back');

      // A later call is not held back; once it is delivered, the held-back records had their chance to show.
      await h.publishOk([h.record(topic, 'held', 'held-next-call')]);
      const c = await h.consume(h.group(), [topic]);
      await c.waitForValues(3);
      const values = c.records.map((r) => r.value.toString());
      for (const v of ['other-before', 'other-after', 'held-next-call']) assert.ok(values.includes(v), `${v} was not delivered`);
      assert.ok(!values.some((v) => v.startsWith('held-after')), 'a held-back record was delivered');
    });
  });
}

class Harness {
  readonly #t: TransportUnderTest;
  readonly #consumers: Consumer[] = [];
  readonly #id = randomBytes(4).toString('hex');
  #n = 0;

  constructor(t: TransportUnderTest) {
    this.#t = t;
  }

  get publisher(): Publisher {
    return this.#t.publisher;
  }

  async topic(partitions: number): Promise<string> {
    const name = `zl-conf-${this.#id}-${++this.#n}`;
    await this.#t.createTopic(name, partitions);
    return name;
  }

  group(): string {
    return `zl-conf-group-${this.#id}-${++this.#n}`;
  }

  record(topic: string, key: string, value: string): OutgoingRecord {
    return { topic, key, value: Buffer.from(value), headers: { 'x-test': 'conformance' } };
  }

  async publishOk(records: OutgoingRecord[]): Promise<PublishOutcome[]> {
    const outcomes = await this.#t.publisher.publish(records);
    assert.equal(outcomes.length, records.length, 'one outcome per record');
    outcomes.forEach((o, i) => {
      assert.ok(o.ok, `record ${i} failed: ${o.ok ? '' : o.error.message}`);
    });
    return outcomes;
  }

  async consume(groupId: string, topics: string[]): Promise<Consumer> {
    const consumer = new Consumer();
    consumer.sub = await this.#t.subscriber.subscribe({
      groupId,
      topics,
      onRecords: (batch) => consumer.take(batch),
      onAssign: (ps) => {
        for (const p of ps) consumer.assigned.add(`${p.topic}/${p.partition}`);
      },
      onRevoke: async (ps) => {
        for (const p of ps) consumer.assigned.delete(`${p.topic}/${p.partition}`);
      },
    });
    this.#consumers.push(consumer);
    return consumer;
  }

  async close(): Promise<void> {
    for (const c of this.#consumers) await c.close().catch(() => {});
    await this.#t.cleanup();
  }
}

class Consumer {
  sub!: Subscription;
  readonly records: IncomingRecord[] = [];
  readonly assigned = new Set<string>();
  #closed = false;

  take(batch: ReceivedBatch): void {
    for (let i = 1; i < batch.records.length; i++) {
      assert.ok(batch.records[i - 1]!.offset < batch.records[i]!.offset, 'a batch is in offset order');
    }
    for (const r of batch.records) {
      assert.equal(r.topic, batch.topic);
      assert.equal(r.partition, batch.partition);
    }
    this.records.push(...batch.records);
  }

  waitForValues(n: number): Promise<boolean> {
    return waitFor(() => distinctValues(this.records) >= n, {
      timeoutMs: WAIT_MS,
      what: `${n} distinct records (have ${distinctValues(this.records)})`,
    });
  }

  /** Commits, per partition, the offset after the last record received. */
  async commitAll(topic: string): Promise<void> {
    const offsets = [...partitions(this.records)].map(([partition, list]) => ({
      topic,
      partition,
      offset: list[list.length - 1]!.offset + 1n,
    }));
    await this.sub.commit(offsets);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.sub.close();
  }
}

function distinctValues(records: IncomingRecord[]): number {
  return new Set(records.map((r) => r.value.toString('hex'))).size;
}

/** Records per partition, deduplicated by offset and sorted by it. */
function partitions(records: IncomingRecord[]): Map<number, IncomingRecord[]> {
  const out = new Map<number, IncomingRecord[]>();
  for (const r of firstDeliveries(records)) out.set(r.partition, [...(out.get(r.partition) ?? []), r]);
  for (const list of out.values()) list.sort((x, y) => (x.offset < y.offset ? -1 : x.offset > y.offset ? 1 : 0));
  return out;
}

/** The first delivery of each (partition, offset), in delivery order: at-least-once may repeat some. */
function firstDeliveries(records: IncomingRecord[]): IncomingRecord[] {
  const seen = new Set<string>();
  return records.filter((r) => {
    const id = `${r.topic}/${r.partition}/${r.offset}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/** Math.min does not take bigints. */
function minOffset(offsets: bigint[]): bigint | undefined {
  let min: bigint | undefined;
  for (const o of offsets) if (min === undefined || o < min) min = o;
  return min;
}
