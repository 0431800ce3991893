import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { tableLog } from '../../../src/adapters/table-log/table-log-transport.ts';
import { ZerolossError } from '../../../src/core/errors.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';
import type { Publisher } from '../../../src/ports/transport.ts';
import type { WalStream } from '../../../src/ports/wal-stream.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { confirmedFlush, currentLsn, startWalPostgres, walSchema } from './wal-postgres.ts';

/**
 * One business transaction enqueuing far more messages than the relay may buffer (a bulk job): the slot
 * streams it only once it committed, whole, and a stream that held it whole until its commit record would
 * hold a million rows in memory, and after the crash that follows, the same again: the relay would never
 * get past it.
 */
let instance: PostgresInstance;
before(async () => {
  instance = await startWalPostgres('bigtx');
});
after(async () => {
  await instance?.stop('fast');
});

const ROWS = 6_000;
const BATCH = 100;
const BUFFER = 500;

describe('WAL relay: one large transaction', () => {
  test('is read in parts within the buffer limit while the broker is away, then sent whole, once each, and confirmed', async () => {
    const s = await walSchema(instance.url);
    const transport = tableLog(s.store);
    await transport.ensureTopic('bulk', 2);
    let down = true;
    let refused = 0;
    let largestPublish = 0;
    const publisher: Publisher = {
      close: () => transport.publisher.close(),
      async publish(records) {
        largestPublish = Math.max(largestPublish, records.length);
        if (!down) return transport.publisher.publish(records);
        refused++;
        const error = new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', 'broker down (test)', { retryable: true });
        return records.map(() => ({ ok: false as const, error, attempted: true }));
      },
    };
    // Counts the rows the stream hands over: what the relay holds decoded in memory at most.
    let received = 0;
    const stream: WalStream = {
      slot: s.wal.stream.slot,
      open: (handler) =>
        s.wal.stream.open({
          ...handler,
          partRows: handler.partRows,
          commit(commit) {
            received += commit.rows.length;
            handler.commit(commit);
          },
        }),
    };
    const relay = createRelay({
      mode: 'wal',
      wal: { ...s.wal, stream },
      transport: { publisher },
      walBatchSize: BATCH,
      maxBufferedRows: BUFFER,
      pollIntervalMs: 100,
    });
    const outbox = testOutbox({ schema: s.schema });
    try {
      await relay.start();
      await s.store.transaction(async (tx) => {
        for (let i = 0; i < ROWS; i++) await outbox.enqueue(tx, { topic: 'bulk', key: `k${i % 50}`, type: 't', payload: { i } });
      });
      const committed = await currentLsn(s.pool);
      const buffered = async () =>
        (await relay.registry.getSingleMetric('zeroloss_wal_relay_buffered_rows')?.get())?.values.reduce((n, v) => n + v.value, 0) ?? 0;
      await waitFor(async () => refused >= 3 && (await buffered()) >= BUFFER, {
        what: 'the relay retrying through the outage with its buffer full (the stream paused)',
        timeoutMs: 15_000,
      });
      // The buffer, the batches out, and what one socket read decodes past the pause.
      assert.ok(received <= BUFFER + 3 * BATCH + 1_000, `rows decoded during the outage: ${received} of ${ROWS}`);
      assert.ok(largestPublish <= BATCH, `the largest publish: ${largestPublish} records`);
      assert.ok((await confirmedFlush(s.pool, s.wal.slot)) < committed, 'nothing of the transaction confirmed before it is all sent');
      down = false;
      await waitFor(
        async () => (await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox where state = 1`)).rows[0].n === ROWS,
        { what: 'every row recorded as sent', timeoutMs: 60_000 },
      );
      const { rows } = await s.pool.query(
        `select count(*)::int as n, count(distinct headers->>'zl-id')::int as ids from "${s.schema}".log_record where topic = 'bulk'`,
      );
      assert.deepEqual(rows[0], { n: ROWS, ids: ROWS });
      await waitFor(async () => (await confirmedFlush(s.pool, s.wal.slot)) >= committed, {
        what: 'the transaction confirmed once all of it is sent',
        timeoutMs: 10_000,
      });
    } finally {
      await relay.stop();
      await transport.close();
      await s.cleanup();
    }
  });

  test('a transaction of exactly N parts ends with its last part, whose rows know the commit end', async () => {
    const s = await walSchema(instance.url);
    const got: Array<{ rows: number; endLsn: string | undefined; commitEnds: number }> = [];
    const session = await s.wal.stream.open({
      partRows: 3,
      commit(commit) {
        got.push({
          rows: commit.rows.length,
          endLsn: commit.endLsn,
          commitEnds: commit.rows.filter((r) => r.commitEnd !== undefined).length,
        });
      },
      caughtUp: () => false,
      end: () => {},
    });
    const outbox = testOutbox({ schema: s.schema });
    try {
      for (const n of [6, 7]) {
        await s.store.transaction(async (tx) => {
          for (let i = 0; i < n; i++) await outbox.enqueue(tx, { topic: 'bulk', key: `k${i}`, type: 't', payload: { i } });
        });
      }
      await waitFor(() => got.reduce((n, c) => n + c.rows, 0) === 13 && got.filter((c) => c.endLsn !== undefined).length === 2, {
        what: 'both transactions received',
      });
      // 6 rows: a part of 3, then the commit with the last 3 (not two parts and an empty commit: a replay
      // would find none of its rows recorded, having no commit end to look them up by).
      assert.deepEqual(
        got.map((c) => [c.rows, c.endLsn === undefined ? 'part' : 'commit', c.commitEnds]),
        [
          [3, 'part', 0],
          [3, 'commit', 3],
          [3, 'part', 0],
          [3, 'part', 0],
          [1, 'commit', 1],
        ],
      );
    } finally {
      await session.close();
      await s.cleanup();
    }
  });
});
