import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ZerolossError } from '../../../src/core/errors.ts';
import { partitionFor } from '../../../src/core/partition-for.ts';
import { WalRelay, type WalRelayConfig } from '../../../src/outbox/wal-relay.ts';
import type { PublishOutcome, Publisher } from '../../../src/ports/transport.ts';
import type { WalCommit, WalFailure, WalLedger, WalStream, WalStreamHandler } from '../../../src/ports/wal-stream.ts';
import { idleRetrySource } from '../../helpers/idle-retry-source.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/**
 * The WAL relay's pipelining, with the slot, the outbox and the broker faked in memory: batches overlap
 * (a lane publishes the next batch's part while another lane still waits on the broker), yet a key's rows
 * never overtake one another, a failure holds back its key's rows of later batches, and batches are
 * confirmed in order, each only once it and every batch before it is recorded.
 */
const TOPIC = 'orders';

/** Two keys that land in different lanes of two, so one lane can run ahead of the other. */
function keysInTwoLanes(): [string, string] {
  const lane = (key: string) => partitionFor(key, 2);
  const a = 'k-0';
  for (let i = 1; i < 100; i++) if (lane(`k-${i}`) !== lane(a)) return [a, `k-${i}`];
  throw new Error('no two keys in different lanes');
}

function row(ref: number, key: string) {
  return { ref: String(ref), messageId: `m-${ref}`, record: { topic: TOPIC, key, headers: {}, value: Buffer.from(`${key}#${ref}`) } };
}

/** A record's name in the log below: `key#ref`. */
const nameOf = (value: Buffer | null | undefined) => String(value);

interface Fake {
  handler: WalStreamHandler | undefined;
  /** Everything that happened, in order: `publish key#ref`, `record [refs]`, `ack lsn`. */
  log: string[];
  recorded: Array<{ sent: string[]; failed: WalFailure[] }>;
  /** Publishes of these `key#ref` names wait until `release(name, outcome)`. */
  gates: Map<string, { outcome?: PublishOutcome; waiters: Array<() => void> }>;
  /** While set, record statements wait for it (a slow database). */
  recordsHeld?: Promise<void>;
  /** Times the relay paused the stream (flow control). */
  pauses: number;
}

function fakes(): { fake: Fake; stream: WalStream; ledger: WalLedger; publisher: Publisher } {
  const fake: Fake = { handler: undefined, log: [], recorded: [], gates: new Map(), pauses: 0 };
  const stream: WalStream = {
    slot: 'test_slot',
    async open(handler) {
      fake.handler = handler;
      return {
        acknowledge: async (lsn) => {
          fake.log.push(`ack ${lsn}`);
        },
        pause: () => {
          fake.pauses++;
        },
        resume: () => {},
        close: async () => handler.end(undefined),
      };
    },
  };
  const retrySource = idleRetrySource();
  const ledger: WalLedger = {
    retrySource,
    async record(sent, failed) {
      fake.log.push(`record ${[...sent.map((s) => s.ref), ...failed.map((f) => f.ref)].sort().join(',')}`);
      await fake.recordsHeld;
      fake.recorded.push({ sent: sent.map((s) => s.ref), failed });
      return { sent: sent.length };
    },
    heldKeys: async () => new Set(),
  };
  const publisher: Publisher = {
    async publish(records) {
      return Promise.all(
        records.map(async (record, i): Promise<PublishOutcome> => {
          const name = nameOf(record.value);
          fake.log.push(`publish ${name}`);
          const gate = fake.gates.get(name);
          if (gate && !gate.outcome) await new Promise<void>((resolve) => gate.waiters.push(resolve));
          return gate?.outcome ?? { ok: true, partition: 0, offset: BigInt(i) };
        }),
      );
    },
    close: async () => {},
  };
  return { fake, stream, ledger, publisher };
}

function gate(fake: Fake, name: string): (outcome: PublishOutcome) => void {
  const g: { outcome?: PublishOutcome; waiters: Array<() => void> } = { waiters: [] };
  fake.gates.set(name, g);
  return (outcome) => {
    g.outcome = outcome;
    for (const w of g.waiters) w();
  };
}

/** Lets every publish still waiting go, so a failed assertion does not leave the relay stuck in stop(). */
function openGates(fake: Fake): void {
  for (const g of fake.gates.values()) {
    g.outcome ??= { ok: true, partition: 0, offset: 0n };
    for (const w of g.waiters) w();
  }
}

function commit(endLsn: string | undefined, rows: ReturnType<typeof row>[]): WalCommit {
  return { endLsn, rows };
}

/** The relay over the fakes; `config` replaces the default WAL settings (small batches, two lanes). */
function relayOf(
  parts: ReturnType<typeof fakes>,
  config: WalRelayConfig = { walBatchSize: 2, publishConcurrency: 2, batchesInFlight: 3 },
): WalRelay {
  return new WalRelay({
    stream: parts.stream,
    ledger: parts.ledger,
    publisher: parts.publisher,
    config,
    relay: { pollIntervalMs: 60_000 },
  });
}

test('a row failing in one batch holds back its key in the batches published after it, while other keys run ahead', async () => {
  const parts = fakes();
  const { fake } = parts;
  const [a, b] = keysInTwoLanes();
  // a#1 waits on the broker, then fails for good; b's lane goes on to the next batches meanwhile.
  const failA1 = gate(fake, `${a}#1`);
  const relay = relayOf(parts);
  await relay.start();
  try {
    await waitFor(() => fake.handler, { what: 'the stream to open' });
    const handler = fake.handler as WalStreamHandler;
    handler.commit(commit('0/10', [row(1, a), row(2, b)]));
    await waitFor(() => fake.log.includes(`publish ${a}#1`), { what: 'a#1 to be published' });
    handler.commit(commit('0/20', [row(3, a), row(4, b)]));
    handler.commit(commit('0/30', [row(5, a), row(6, b)]));
    // The batches overlap: b's lane has published both later batches while a#1 is still out.
    await waitFor(() => fake.log.includes(`publish ${b}#6`), { what: "b's lane to run ahead into the third batch" });
    assert.ok(!fake.log.some((e) => e.startsWith('ack')), 'nothing is confirmed while the first batch is unsettled');
    // The ordering guard: a's later rows were not published ahead of a#1.
    assert.deepEqual(
      fake.log.filter((e) => e.startsWith(`publish ${a}#`)),
      [`publish ${a}#1`],
    );
    failA1({ ok: false, error: new ZerolossError('ZL_SEND_REJECTED', 'MESSAGE_TOO_LARGE (test)', { retryable: false }), attempted: true });
    await waitFor(() => fake.log.includes('ack 0/30'), { what: 'the third batch to be confirmed' });
    // a's later rows were never published: held back behind a#1, handed to the polling path.
    assert.deepEqual(
      fake.log.filter((e) => e.startsWith(`publish ${a}#`)),
      [`publish ${a}#1`],
    );
    const failed = fake.recorded.flatMap((r) => r.failed);
    assert.deepEqual(
      failed.map((f) => [f.ref, f.heldBack]),
      [
        ['1', false],
        ['3', true],
        ['5', true],
      ],
    );
    assert.deepEqual(fake.recorded.flatMap((r) => r.sent).sort(), ['2', '4', '6']);
    // b's rows went out in commit order.
    assert.deepEqual(
      fake.log.filter((e) => e.startsWith(`publish ${b}#`)),
      [`publish ${b}#2`, `publish ${b}#4`, `publish ${b}#6`],
    );
  } finally {
    openGates(fake);
    await relay.stop();
  }
});

test('batches are confirmed in order, each once it and every batch before it is recorded, whichever lane finishes first', async () => {
  const parts = fakes();
  const { fake } = parts;
  const [a, b] = keysInTwoLanes();
  const releaseA1 = gate(fake, `${a}#1`);
  const relay = relayOf(parts);
  await relay.start();
  try {
    await waitFor(() => fake.handler, { what: 'the stream to open' });
    const handler = fake.handler as WalStreamHandler;
    handler.commit(commit('0/10', [row(1, a)]));
    await waitFor(() => fake.log.includes(`publish ${a}#1`), { what: 'a#1 to be published' });
    handler.commit(commit('0/20', [row(2, b), row(3, b)]));
    // The second batch is published and recorded while the first still waits on the broker...
    await waitFor(() => fake.log.includes('record 2,3'), { what: 'the second batch to be recorded' });
    // ...but not confirmed: its position would confirm the first batch's commit too.
    assert.ok(!fake.log.some((e) => e.startsWith('ack')), 'no confirmation before the first batch is recorded');
    releaseA1({ ok: true, partition: 0, offset: 7n });
    await waitFor(() => fake.log.includes('ack 0/20'), { what: 'the second batch to be confirmed' });
    const order = fake.log.filter((e) => e.startsWith('ack') || e === 'record 1');
    assert.deepEqual(order, ['record 1', 'ack 0/10', 'ack 0/20']);
  } finally {
    openGates(fake);
    await relay.stop();
  }
});

test('stopped during an outage: the batches out are neither recorded nor confirmed, and stop() returns', async () => {
  const parts = fakes();
  const { fake } = parts;
  const [a, b] = keysInTwoLanes();
  let attempts = 0;
  // The broker is unreachable: every record of every call, retried in place until the relay stops.
  parts.publisher.publish = async (records) => {
    attempts++;
    for (const r of records) fake.log.push(`publish ${nameOf(r.value)}`);
    const error = new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', 'no broker (test)', { retryable: true });
    return records.map(() => ({ ok: false, error, attempted: true }));
  };
  const relay = relayOf(parts);
  await relay.start();
  let stopped = false;
  try {
    await waitFor(() => fake.handler, { what: 'the stream to open' });
    const handler = fake.handler as WalStreamHandler;
    handler.commit(commit('0/10', [row(1, a), row(2, b)]));
    handler.commit(commit('0/20', [row(3, a), row(4, b)]));
    // Both lanes retry their part of the first batch in place; neither goes on to the second.
    await waitFor(() => attempts >= 4, { what: 'both lanes retrying through the outage' });
    await relay.stop();
    stopped = true;
    assert.deepEqual(fake.recorded, []);
    assert.ok(!fake.log.some((e) => e.startsWith('ack')), 'nothing confirmed');
    assert.ok(!fake.log.includes(`publish ${a}#3`) && !fake.log.includes(`publish ${b}#4`), 'no lane went past the batch it gave up');
  } finally {
    if (!stopped) await relay.stop();
  }
});

test('a small batch is published once the batch before it is on the broker, without waiting for its record statement', async () => {
  const parts = fakes();
  const { fake } = parts;
  const [a, b] = keysInTwoLanes();
  let releaseRecords: () => void = () => {};
  fake.recordsHeld = new Promise<void>((resolve) => {
    releaseRecords = resolve;
  });
  const relay = relayOf(parts);
  await relay.start();
  try {
    await waitFor(() => fake.handler, { what: 'the stream to open' });
    const handler = fake.handler as WalStreamHandler;
    // One row at a time, as at a moderate rate: no batch is full.
    handler.commit(commit('0/10', [row(1, a)]));
    await waitFor(() => fake.log.includes('record 1'), { what: "the first batch's record statement to start" });
    handler.commit(commit('0/20', [row(2, b)]));
    // The first batch is on the broker and its record statement is slow: the second row goes meanwhile
    // (it waited for the whole first batch to settle before, a publish, a record and a confirmation).
    await waitFor(() => fake.log.includes(`publish ${b}#2`), { what: 'the second row published while the first batch is recorded' });
    assert.ok(!fake.log.includes('ack 0/10'), 'the first batch is not confirmed yet');
    releaseRecords();
    await waitFor(() => fake.log.includes('ack 0/20'), { what: 'both batches confirmed' });
    assert.deepEqual(
      fake.log.filter((l) => l.startsWith('ack')),
      ['ack 0/10', 'ack 0/20'],
      'confirmed in batch order',
    );
  } finally {
    releaseRecords();
    openGates(fake);
    await relay.stop();
  }
});

test('flow control counts transactions, not only rows: commits without rows behind a stuck batch pause the stream', async () => {
  // PostgreSQL 14 and older send BEGIN/COMMIT for every transaction of the database, outbox rows or not;
  // counted as nothing, they queued without bound while the broker was away.
  const parts = fakes();
  const { fake } = parts;
  const relay = relayOf(parts, { walBatchSize: 10, maxBufferedRows: 100 });
  const [a] = keysInTwoLanes();
  const release = gate(fake, `${a}#1`);
  await relay.start();
  try {
    await waitFor(() => fake.handler, { what: 'the stream to open' });
    const handler = fake.handler as WalStreamHandler;
    handler.commit(commit('0/10', [row(1, a)]));
    await waitFor(() => fake.log.includes(`publish ${a}#1`), { what: 'the first batch stuck at the broker' });
    for (let i = 0; i < 500; i++) handler.commit(commit(`0/${(0x100 + i).toString(16)}`, []));
    await waitFor(() => fake.pauses > 0, { what: 'the stream paused by 500 queued commits', timeoutMs: 2_000 });
  } finally {
    release({ ok: true, partition: 0, offset: 0n });
    openGates(fake);
    await relay.stop();
  }
});

test('the parts of a large transaction are sent and recorded as they come, and only its last part confirms it', async () => {
  // A stream hands a transaction with more than partRows rows over in parts (endLsn undefined but on the last).
  const parts = fakes();
  const { fake } = parts;
  const [a, b] = keysInTwoLanes();
  const relay = relayOf(parts);
  await relay.start();
  try {
    await waitFor(() => fake.handler, { what: 'the stream to open' });
    const handler = fake.handler as WalStreamHandler;
    assert.equal(handler.partRows, 2, 'parts of walBatchSize rows');
    handler.commit(commit(undefined, [row(1, a), row(2, b)]));
    handler.commit(commit(undefined, [row(3, a), row(4, b)]));
    await waitFor(() => fake.log.includes('record 3,4'), { what: 'the first two parts recorded' });
    assert.ok(!fake.log.some((e) => e.startsWith('ack')), 'a part that is not the last confirms nothing');
    handler.commit(commit('0/30', [row(5, a)]));
    await waitFor(() => fake.log.includes('ack 0/30'), { what: 'the transaction confirmed with its last part' });
    assert.deepEqual(
      fake.log.filter((e) => e.startsWith('ack') || e.startsWith('record')),
      ['record 1,2', 'record 3,4', 'record 5', 'ack 0/30'],
    );
    assert.deepEqual(
      fake.log.filter((e) => e.startsWith(`publish ${a}`)),
      [`publish ${a}#1`, `publish ${a}#3`, `publish ${a}#5`],
      "a key's rows in order across the parts",
    );
    const acknowledged = await relay.registry.getSingleMetric('zeroloss_wal_relay_acknowledged_total')?.get();
    assert.equal(
      acknowledged?.values.reduce((n, v) => n + v.value, 0),
      1,
      'one transaction confirmed, not three',
    );
  } finally {
    await relay.stop();
  }
});

test("a 'batch' listener that throws is reported as an error; the batch is confirmed and the relay goes on", async () => {
  // The event is emitted once the batch's record statement has committed: a throw out of emit() failed the
  // record step, which recorded the batch again (nothing changed: a replay), emitted again, threw again,
  // and never confirmed it: the slot and every batch behind it stood still for good.
  const parts = fakes();
  const { fake } = parts;
  const [a] = keysInTwoLanes();
  const relay = relayOf(parts);
  const errors: Error[] = [];
  relay.on('error', (error) => errors.push(error));
  relay.on('batch', () => {
    throw new Error('metrics hook broke (test)');
  });
  await relay.start();
  try {
    await waitFor(() => fake.handler, { what: 'the stream to open' });
    const handler = fake.handler as WalStreamHandler;
    handler.commit(commit('0/10', [row(1, a)]));
    handler.commit(commit('0/20', [row(2, a)]));
    await waitFor(() => fake.log.includes('ack 0/20'), { what: 'both batches confirmed', timeoutMs: 3_000 });
    assert.deepEqual(fake.recorded.flatMap((r) => r.sent).sort(), ['1', '2'], 'each row recorded once');
    assert.ok(errors.some((e) => (e as ZerolossError).code === 'ZL_LISTENER_FAILED' && /metrics hook broke/.test(e.message)));
  } finally {
    await relay.stop();
  }
});

test('a publisher that returns another number of outcomes than records gets none of them trusted: no row is recorded sent that the broker did not take', async () => {
  // Matched by index, a list missing its first entry marked the first row sent with the second's outcome.
  const parts = fakes();
  const { fake } = parts;
  const [a] = keysInTwoLanes();
  let calls = 0;
  const delivered = new Set<string>();
  // The first call drops its first record (a bug) and answers for the others only.
  parts.publisher.publish = async (records) => {
    calls++;
    const taken = calls === 1 ? records.slice(1) : records;
    for (const r of taken) delivered.add(nameOf(r.value).split('#')[1] as string);
    return taken.map((_, i) => ({ ok: true, partition: 0, offset: BigInt(i) }));
  };
  const relay = relayOf(parts, { walBatchSize: 10, publishConcurrency: 1 });
  await relay.start();
  try {
    await waitFor(() => fake.handler, { what: 'the stream to open' });
    (fake.handler as WalStreamHandler).commit(commit('0/10', [row(1, a), row(2, a)]));
    await waitFor(() => fake.log.includes('ack 0/10'), { what: 'the batch confirmed' });
    assert.ok(calls >= 2, 'published again after the untrustworthy answer');
    const recorded = fake.recorded.flatMap((r) => r.sent).sort();
    assert.deepEqual(recorded, ['1', '2']);
    assert.deepEqual(
      recorded.filter((ref) => !delivered.has(ref)),
      [],
      'every row recorded as sent was taken by the broker',
    );
  } finally {
    await relay.stop();
  }
});
