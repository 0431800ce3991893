import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildConsumerChain, type ConsumerChainDeps } from '../../../src/consumer/consumer-chain.ts';
import { consumerConfigSchema } from '../../../src/consumer/consumer-config.ts';
import { createConsumerMetrics } from '../../../src/consumer/consumer-metrics.ts';
import { type Delivery, newDelivery } from '../../../src/consumer/delivery.ts';
import { HandlerRegistry } from '../../../src/consumer/handler-registry.ts';
import { KeyLanes, type LaneControl } from '../../../src/consumer/key-lanes.ts';
import { OffsetTracker } from '../../../src/consumer/offset-tracker.ts';
import { envelopeHeaders } from '../../../src/core/envelope.ts';
import { RetryableError } from '../../../src/core/errors.ts';
import type { StartRef } from '../../../src/ports/inbox-store.ts';

/**
 * The poison guard's promise (poison-guard.ts): a record only queued behind its key when the process dies
 * holds no start mark, so it is no suspect (at maxStarts 1 it would be dead-lettered as poison unrun).
 * Drives the real chain and key lanes over an in-memory start log whose statements take one event-loop
 * turn (a round trip); the marks it holds are what a crash at that moment would leave behind.
 */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * `markTurns`: how many turns the start mark of a record takes (default one). `crashed`: marks a crash left
 * behind (starts not taken back, attempts that failed before it). `retry`: the policy.
 */
function harness(
  markTurns: Map<bigint, number> = new Map(),
  crashed: Map<bigint, { started: number; failed: number }> = new Map(),
  retry: { delayMs: number; maxRetries: number } = { delayMs: 60_000, maxRetries: 3 },
  /** The digest of an effect already applied under every key (another message's, unless it matches). */
  appliedDigest?: string,
) {
  const marks = new Map<bigint, number>([...crashed].map(([offset, m]) => [offset, m.started]));
  const failedBefore = new Map<bigint, number>([...crashed].map(([offset, m]) => [offset, m.failed]));
  const releasesAsked: bigint[] = [];
  const startsAsked: bigint[] = [];
  const events: string[] = [];
  let transactions = 0;
  const starts = {
    firstStart: async (ref: StartRef) => {
      startsAsked.push(ref.offset);
      for (let i = markTurns.get(ref.offset) ?? 1; i > 0; i--) await turn();
      if ((marks.get(ref.offset) ?? 0) > 0) return false;
      marks.set(ref.offset, 1);
      return true;
    },
    countStart: async (ref: StartRef) => {
      await turn();
      const n = (marks.get(ref.offset) ?? 0) + 1;
      marks.set(ref.offset, n);
      return { started: n, failed: failedBefore.get(ref.offset) ?? 0 };
    },
    release: async (ref: StartRef) => {
      releasesAsked.push(ref.offset);
      await turn();
      marks.set(ref.offset, Math.max(0, (marks.get(ref.offset) ?? 0) - 1));
    },
    forget: async () => {},
  };
  const inbox = {
    claimMany: async (_tx: unknown, entries: Array<{ contentDigest?: string }>) =>
      entries.map((e) =>
        appliedDigest === undefined
          ? { kind: 'claimed' }
          : e.contentDigest === appliedDigest
            ? { kind: 'duplicate' }
            : { kind: 'conflict', appliedDigest },
      ),
    unclaimMany: async () => {},
    contains: async (_group: string, _key: string, digest?: string) =>
      appliedDigest !== undefined && (digest === undefined || digest === appliedDigest),
    storeOffset: async () => {},
  };
  const db = {
    transaction: async <T>(fn: (tx: unknown) => Promise<T>) => {
      transactions++;
      return fn({ query: async () => ({ rows: [] }) });
    },
  };
  const config = consumerConfigSchema.parse({ groupId: 'g', topics: ['t'], retry });
  const handlers = new HandlerRegistry(config.retry, config.minAcceptedVersions);
  const chain = buildConsumerChain({
    config,
    handlers,
    db,
    inbox: { ...inbox, ...starts },
    deadLetters: { record: async () => ({ id: '1', inserted: true, published: false, copyError: null }) },
    publisher: undefined,
    cache: undefined,
    tracker: new OffsetTracker(),
    metrics: createConsumerMetrics(),
    reporter: { emit: (event: string) => events.push(event) > 0 },
    onFinished: () => {},
    report: () => {},
  } as unknown as ConsumerChainDeps);
  const lanes = new KeyLanes(8, (error) => assert.fail(error as Error), { depth: config.batch.maxMessages });
  const stop = new AbortController();
  const outcomes = new Map<bigint, Delivery>();
  /** Delivers a record of key k; `watch` sees the lane control's calls. */
  const deliver = (offset: bigint, type: string, watch: { wait?: () => void; sleep?: (ms: number) => void } = {}) =>
    lanes.push('k', async (control) => {
      const lane: LaneControl = {
        ticket: control.ticket,
        exclusive: (fn) => control.exclusive(fn),
        wait: (until, signal) => {
          watch.wait?.();
          return control.wait(until, signal);
        },
        sleep: (ms, signal) => {
          watch.sleep?.(ms);
          return control.sleep(ms, signal);
        },
      };
      const id = `m${offset}`;
      const headers = envelopeHeaders(
        { id, traceId: id, type, version: 1, key: 'k', producerId: 'p', seq: 0, createdAt: new Date().toISOString(), headers: {} },
        'application/json',
      );
      const d = newDelivery(
        { topic: 't', partition: 0, offset, key: 'k', value: Buffer.from('{}'), headers },
        { groupId: 'g', signal: stop.signal, lane, epoch: 1 },
      );
      outcomes.set(offset, d);
      await chain.run(d).catch(() => {});
    });
  const end = async () => {
    stop.abort();
    await lanes.idle();
  };
  return {
    marks,
    releasesAsked,
    startsAsked,
    transactions: () => transactions,
    events,
    handlers,
    deliver,
    outcomes,
    idle: () => lanes.idle(),
    end,
  };
}

describe('poison marks of records queued behind their key', () => {
  test('a record queued behind a running handler of its key holds no start mark', async (t) => {
    const h = harness();
    let running!: () => void;
    const blockRunning = new Promise<void>((resolve) => (running = resolve));
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    h.handlers.register('block', async () => {
      running();
      await gate;
    });
    h.handlers.register('credit', async () => {});
    t.after(async () => {
      open();
      await h.end();
    });
    h.deliver(1n, 'block');
    await blockRunning;
    let waiting!: () => void;
    const queued = new Promise<void>((resolve) => (waiting = resolve));
    h.deliver(2n, 'credit', { wait: () => waiting() });
    await queued;
    await turn();
    assert.equal(h.marks.get(2n) ?? 0, 0, 'a crash now would make the queued credit a suspect (poison at maxStarts 1)');
    open();
    await h.idle();
    assert.equal(h.outcomes.get(2n)?.outcome?.kind, 'processed', 'the queued credit applied once the block handler finished');
    assert.ok(!h.events.includes('poison-suspect'));
  });

  test("a failed message's followers leave their attempts at once, not one round trip after the other", async (t) => {
    const h = harness();
    t.after(() => h.end());
    h.handlers.register('flaky', async () => {
      throw new RetryableError('downstream is failing');
    });
    h.handlers.register('credit', async () => {});
    let inDelay!: (asked: bigint[]) => void;
    const delayed = new Promise<bigint[]>((resolve) => (inDelay = resolve));
    h.deliver(1n, 'flaky', { sleep: (ms) => ms >= 60_000 && inDelay([...h.releasesAsked]) });
    h.deliver(2n, 'credit');
    h.deliver(3n, 'credit');
    const asked = await delayed;
    assert.ok(h.marks.has(2n) && h.marks.has(3n), 'the credits followed the flaky message into its attempt (group commit)');
    // Once the flaky message is in its retry delay, its followers are only waiting behind it: their marks
    // must already be on their way back, or a crash then leaves them suspects.
    assert.deepEqual(
      asked.filter((o) => o !== 1n).sort(),
      [2n, 3n],
      'both followers asked to take back their marks before the flaky message began its retry delay',
    );
    await turn();
    await turn();
    assert.equal(h.marks.get(2n), 0);
    assert.equal(h.marks.get(3n), 0);
    await h.end();
    assert.ok(!h.events.includes('poison-suspect'));
  });

  test('a record marked behind a message that turns out a suspect takes its mark back while the suspect runs alone', async (t) => {
    // The credit starts behind the message while that one takes its mark, and is marked first; it waits
    // for that one (its slot given back), which turns out a suspect and goes to run alone: the credit is
    // out of turn. The suspect holds every slot while it runs, so the credit's failure cannot come back
    // through its stages before the suspect ends: a crash then (suspects are suspected of causing them)
    // must not find the credit marked.
    const h = harness(new Map([[1n, 3]]), new Map([[1n, { started: 1, failed: 0 }]]));
    let running!: () => void;
    const blockRunning = new Promise<void>((resolve) => (running = resolve));
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    h.handlers.register('block', async () => {
      running();
      await gate;
    });
    h.handlers.register('credit', async () => {});
    t.after(async () => {
      open();
      await h.end();
    });
    h.deliver(1n, 'block');
    h.deliver(2n, 'credit');
    await blockRunning;
    assert.deepEqual(h.startsAsked, [1n, 2n], 'the credit took a start mark behind the suspect');
    for (let i = 0; i < 5 && (h.marks.get(2n) ?? 0) > 0; i++) await turn();
    assert.equal(h.marks.get(2n) ?? 0, 0, 'marked while the suspect runs: a crash now makes the credit a suspect too');
    open();
    await h.idle();
    assert.equal(h.outcomes.get(2n)?.outcome?.kind, 'processed');
    assert.deepEqual(h.events.filter((e) => e === 'poison-suspect').length, 1, 'only the suspect');
  });

  test('records queued behind a running transaction start once it settled: each marked once, no attempt out of turn', async (t) => {
    const h = harness();
    let running!: () => void;
    const blockRunning = new Promise<void>((resolve) => (running = resolve));
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    h.handlers.register('block', async () => {
      running();
      await gate;
    });
    let credits = 0;
    h.handlers.register('credit', async () => {
      credits++;
    });
    t.after(async () => {
      open();
      await h.end();
    });
    h.deliver(1n, 'block');
    await blockRunning;
    for (const offset of [2n, 3n, 4n]) h.deliver(offset, 'credit');
    for (let i = 0; i < 5; i++) await turn();
    assert.deepEqual(h.startsAsked, [1n], 'nothing behind the running transaction took a start mark');
    open();
    await h.idle();
    for (const offset of [2n, 3n, 4n]) assert.equal(h.outcomes.get(offset)?.outcome?.kind, 'processed');
    assert.equal(credits, 3, 'each handler ran once');
    assert.deepEqual(h.startsAsked, [1n, 2n, 3n, 4n], 'each record marked once: no attempt left out of turn and taken again');
    assert.deepEqual(h.releasesAsked, []);
    assert.equal(h.transactions(), 2, 'the three queued records shared one transaction once the first was applied');
  });

  test("a record whose start mark comes back after its key's previous one's still follows it into its transaction", async (t) => {
    // Its mark went in a later statement, or took longer: without waiting for it, the previous record's
    // transaction would be running by then, and it could only wait for it to end, marked, or be sent back.
    const h = harness(new Map([[2n, 4]]));
    t.after(() => h.end());
    h.handlers.register('credit', async () => {});
    h.deliver(1n, 'credit');
    h.deliver(2n, 'credit');
    await h.idle();
    assert.equal(h.outcomes.get(1n)?.outcome?.kind, 'processed');
    assert.equal(h.outcomes.get(2n)?.outcome?.kind, 'processed');
    assert.deepEqual(h.startsAsked, [1n, 2n], 'each marked once');
    assert.deepEqual(h.releasesAsked, [], 'none sent back out of turn');
    assert.equal(h.transactions(), 1, 'one transaction for both');
  });
});

describe('a suspect after a crash (its start mark survived)', () => {
  test('goes on from the attempt that crashed: with one retry, after attempt 1 failed and attempt 2 crashed, it runs once as attempt 2', async (t) => {
    const h = harness(new Map(), new Map([[5n, { started: 1, failed: 1 }]]), { delayMs: 60_000, maxRetries: 1 });
    t.after(() => h.end());
    const attempts: number[] = [];
    h.handlers.register('flaky', async (_m, ctx) => {
      attempts.push(ctx.attempt);
      throw new RetryableError('downstream is failing');
    });
    // Run from attempt 1 again, it would wait for a retry beyond its policy: the test stops there.
    h.deliver(5n, 'flaky', { sleep: () => void h.end() });
    await h.idle();
    assert.deepEqual(attempts, [2], 'runs as attempt 2, once');
    // Given up as any record whose retries ran out: under its last failure's code.
    assert.deepEqual(h.outcomes.get(5n)?.outcome, { kind: 'dead-lettered', code: 'ZL_RETRYABLE' });
    assert.ok(h.events.includes('poison-suspect'));
  });

  test('whose last allowed attempt failed before the crash is dead-lettered without running again', async (t) => {
    const h = harness(new Map(), new Map([[6n, { started: 1, failed: 2 }]]), { delayMs: 60_000, maxRetries: 1 });
    t.after(() => h.end());
    let runs = 0;
    h.handlers.register('flaky', async () => {
      runs++;
      throw new RetryableError('downstream is failing');
    });
    h.deliver(6n, 'flaky', { sleep: () => void h.end() });
    await h.idle();
    assert.equal(runs, 0, 'no attempt beyond the policy');
    assert.deepEqual(h.outcomes.get(6n)?.outcome, { kind: 'dead-lettered', code: 'ZL_RETRIES_EXHAUSTED' });
  });

  test('under the id of another message already applied is a conflict, not a duplicate', async (t) => {
    const h = harness(new Map(), new Map([[7n, { started: 1, failed: 0 }]]), { delayMs: 60_000, maxRetries: 1 }, 'f'.repeat(32));
    t.after(() => h.end());
    let runs = 0;
    h.handlers.register('credit', async () => {
      runs++;
    });
    h.deliver(7n, 'credit', { sleep: () => void h.end() });
    await h.idle();
    assert.equal(runs, 0, 'its effect is not applied over the other message');
    assert.deepEqual(
      h.outcomes.get(7n)?.outcome,
      { kind: 'dead-lettered', code: 'ZL_MESSAGE_ID_CONFLICT' },
      'and it is not skipped in silence',
    );
  });
});
