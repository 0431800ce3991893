import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PostgresInboxStore } from '../../../src/adapters/postgres/postgres-inbox-store.ts';
import type { Consumer } from '../../../src/consumer/consumer.ts';
import type { IncomingRecord } from '../../../src/core/envelope.ts';
import { RetryableError } from '../../../src/core/errors.ts';
import type { FirstStart, StartRef } from '../../../src/ports/inbox-store.ts';
import type { Database } from '../../../src/ports/sql-executor.ts';
import type { ReceivedBatch, Subscriber } from '../../../src/ports/transport.ts';
import { createEffectTable, insertEffect, uniqueId, zlRecord } from '../../helpers/consumer-fixtures.ts';
import { faultyDatabase } from '../../helpers/faulty-database.ts';
import { freshSchema } from '../../helpers/pg.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/**
 * A shared effect transaction of one key fails because of its first message (group commit along a key):
 * the key's next messages that followed it into the transaction were only waiting behind it, so by the
 * time the failed message is reported waiting for its retry their start marks must be gone. Here they
 * also have to wait for a concurrency slot to go on (the consumer is busy): a crash in that wait found
 * them marked, made them poison suspects and, at `maxStarts: 1`, dead-lettered them.
 *
 * Real consumer, inbox store and Postgres; the records come from a scripted subscriber in one batch, and
 * the store holds back some answers to its start marks (the statements themselves run) to fix the order
 * in which records go on: the flaky message's mark is answered after its followers', and three records of
 * other keys keep their slots while waiting for theirs, so the slots are taken while the transaction runs.
 * The "crash" is the database cut off at the moment the retry is reported: nothing the process does after
 * that reaches it, as after a SIGKILL.
 */
const CONCURRENCY = 3;

describe('the followers of a failed shared transaction', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;

  before(async () => {
    env = await freshSchema('zlfm');
    await createEffectTable(env.db, env.schema);
  });

  after(async () => {
    await env?.cleanup();
  });

  /** Records of `ids` whose attempt is marked as running in `group` (what a crash now would leave). */
  async function marked(group: string, ids: string[]): Promise<string[]> {
    const { rows } = await env.pool.query<{ message_id: string }>(
      `select message_id from "${env.schema}".consumer_attempt where consumer_group = $1 and started > 0 and message_id = any($2::text[])
       order by msg_offset`,
      [group, ids],
    );
    return rows.map((r) => r.message_id);
  }

  function scriptedSubscriber(): { subscriber: Subscriber; deliver: (batch: ReceivedBatch) => void } {
    let onRecords: ((batch: ReceivedBatch) => void) | undefined;
    return {
      subscriber: {
        subscribe: async (options) => {
          onRecords = options.onRecords;
          return { commit: async () => {}, pause: () => {}, resume: () => {}, close: async () => {} };
        },
      },
      deliver: (batch) => onRecords?.(batch),
    };
  }

  function consumer(db: Database, inbox: PostgresInboxStore, subscriber: Subscriber, group: string, topic: string, life: 1 | 2): Consumer {
    const c = testConsumer({
      subscriber,
      db,
      inbox,
      schema: env.schema,
      config: {
        groupId: group,
        topics: [topic],
        concurrency: CONCURRENCY,
        retry: { delayMs: 60_000, maxRetries: 3 },
        poison: { maxStarts: 1 },
        lagIntervalMs: 0,
        stopTimeoutMs: 1_000,
      },
    });
    c.handle<{ n: number }>('flaky', async (m, ctx) => {
      await insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type });
      if (life === 1) throw new RetryableError('downstream is failing');
    });
    c.handle<{ n: number }>('credit', async (m, ctx) =>
      insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }),
    );
    return c;
  }

  /**
   * First life: key k's flaky message and two credits behind it, then three records of other keys. Cut off
   * from the database when the flaky message's retry is reported; resolves with the marks found then.
   */
  async function firstLife(group: string, topic: string): Promise<{ records: IncomingRecord[]; markedAtRetry: string[] }> {
    const records: IncomingRecord[] = [
      ...['flaky', 'credit', 'credit'].map((type, i) => zlRecord({ topic, key: 'k', type, payload: { n: i + 1 } })),
      ...['b1', 'b2', 'b3'].map((key, i) => zlRecord({ topic, key, type: 'credit', payload: { n: i + 1 } })),
    ].map((r, i) => ({ ...r, partition: 0, offset: BigInt(i) }));
    const ids = records.map((r) => r.headers['zl-id'] as string);
    const [flakyId, ...rest] = ids as [string, ...string[]];
    const followerIds = rest.slice(0, 2);
    const busyIds = rest.slice(2);
    const { db, state } = faultyDatabase(env.db);
    let followersAnswered = 0;
    let followersMarked!: () => void;
    const followersReady = new Promise<void>((resolve) => (followersMarked = resolve));
    let releaseBusy!: () => void;
    const busyHeld = new Promise<void>((resolve) => (releaseBusy = resolve));
    class HeldAnswers extends PostgresInboxStore {
      override firstStart(ref: StartRef): Promise<FirstStart | false> {
        const answer = super.firstStart(ref);
        const id = ref.messageId ?? '';
        if (followerIds.includes(id)) {
          void answer.then(() => {
            if (++followersAnswered === followerIds.length) followersMarked();
          });
        }
        // The followers see it starting and wait to follow it into its transaction (they give their slots
        // back meanwhile: the busy records take them); it then goes first, keeping its own slot.
        if (id === flakyId) return answer.then(async (a) => followersReady.then(() => new Promise((r) => setImmediate(() => r(a)))));
        // Holding a slot each, until the end of the life.
        if (busyIds.includes(id)) return answer.then((a) => busyHeld.then(() => a));
        return answer;
      }
    }
    const { subscriber, deliver } = scriptedSubscriber();
    const c = consumer(db, new HeldAnswers(db, { schema: env.schema }), subscriber, group, topic, 1);
    let retried!: () => void;
    const retryReported = new Promise<void>((resolve) => (retried = resolve));
    c.on('retry', (e) => {
      if (e.messageId !== flakyId) return;
      state.cut = true;
      retried();
    });
    await c.start();
    try {
      deliver({ topic, partition: 0, records });
      await retryReported;
      return { records, markedAtRetry: await marked(group, ids.slice(0, 3)) };
    } finally {
      releaseBusy();
      await c.stop();
    }
  }

  test('are no longer marked once the failed message is reported waiting for its retry', async () => {
    const topic = uniqueId('zl-fm');
    const group = uniqueId('g');
    const { records, markedAtRetry } = await firstLife(group, topic);
    const [flakyId, ...followerIds] = records.slice(0, 3).map((r) => r.headers['zl-id'] as string);
    assert.deepEqual(
      markedAtRetry,
      [],
      `marked at the retry (flaky ${flakyId}, followers ${followerIds.join(', ')}): a crash now makes them poison suspects`,
    );
  });

  test('a crash right after the retry is reported dead-letters no follower (maxStarts 1)', async () => {
    const topic = uniqueId('zl-fm');
    const group = uniqueId('g');
    const { records } = await firstLife(group, topic);
    const keyRecords = records.slice(0, 3);
    const ids = keyRecords.map((r) => r.headers['zl-id'] as string);
    // Second life: the key's records redelivered (nothing was committed), over a store that holds nothing back.
    const { subscriber, deliver } = scriptedSubscriber();
    const c = consumer(env.db, new PostgresInboxStore(env.db, { schema: env.schema }), subscriber, group, topic, 2);
    const suspects: string[] = [];
    c.on('poison-suspect', (e) => suspects.push(e.messageId ?? ''));
    await c.start();
    try {
      deliver({ topic, partition: 0, records: keyRecords });
      const settled = async () => {
        const { rows } = await env.pool.query(
          `select (select count(*)::int from "${env.schema}".effect where message_id = any($1::text[])) +
                  (select count(*)::int from "${env.schema}".dead_letter where message_id = any($1::text[])) as n`,
          [ids],
        );
        return rows[0].n === ids.length;
      };
      await waitFor(settled, { what: "the key's three messages applied or dead-lettered", timeoutMs: 30_000 });
    } finally {
      await c.stop();
    }
    const { rows: dead } = await env.pool.query(
      `select message_id, error_code from "${env.schema}".dead_letter where message_id = any($1::text[])`,
      [ids],
    );
    assert.deepEqual(dead, [], 'a follower that only waited behind the failed message is no poison');
    assert.deepEqual(suspects, [], 'none of them was running at the crash');
    const { rows: applied } = await env.pool.query(
      `select message_id from "${env.schema}".effect where message_id = any($1::text[]) order by id`,
      [ids],
    );
    assert.deepEqual(
      applied.map((r) => r.message_id),
      ids,
      'each applied once, in key order',
    );
  });
});
