import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import type { WalLedger } from '../../../src/ports/wal-stream.ts';
import { tableLog } from '../../../src/adapters/table-log/table-log-transport.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';
import type { LogFields, Logger } from '../../../src/ports/logger.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { startWalPostgres, walSchema } from './wal-postgres.ts';

/** P3/O8 on the WAL relay: the broker took a batch but recording it failed: an error line and a counter, then a retry. */
let instance: PostgresInstance;
before(async () => {
  instance = await startWalPostgres('recfail');
});
after(async () => {
  await instance?.stop('fast');
});

describe('WAL relay: a failed record of the broker answer', () => {
  test('is logged as an error and counted in zeroloss_wal_relay_record_failures_total; the retry records it', async () => {
    const s = await walSchema(instance.url);
    const transport = tableLog(s.store);
    await transport.ensureTopic('cb', 1);
    let failing = 2;
    // The ledger port wrapped: its first two records fail as a dropped connection would.
    const ledger = new Proxy(s.wal.ledger, {
      get(target, prop, receiver) {
        if (prop === 'record') {
          return (...args: Parameters<WalLedger['record']>) =>
            failing-- > 0 ? Promise.reject(new Error('injected fault: connection lost while recording')) : target.record(...args);
        }
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const errors: Array<{ fields: LogFields; message: string }> = [];
    const logger: Logger = {
      debug: () => {},
      info: () => {},
      warn: () => {},
      error: (fields, message) => errors.push({ fields, message }),
      child: () => logger,
    };
    const relay = createRelay({ mode: 'wal', wal: { ...s.wal, ledger }, transport, logger, pollIntervalMs: 100 });
    const outbox = testOutbox({ schema: s.schema });
    try {
      await relay.start();
      await s.store.transaction((tx) => outbox.enqueue(tx, { topic: 'cb', key: 'k', type: 't', payload: { n: 1 } }));
      await waitFor(
        async () => (await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox where state = 1`)).rows[0].n === 1,
        { what: 'the row recorded sent after the retries', timeoutMs: 15_000 },
      );
      const metrics = await relay.registry.getSingleMetric('zeroloss_wal_relay_record_failures_total')?.get();
      assert.equal(
        metrics?.values.reduce((n, v) => n + v.value, 0),
        2,
      );
      const lines = errors.filter((e) => /recording them failed \(retrying\)/.test(e.message));
      assert.equal(lines.length, 2, JSON.stringify(errors));
      assert.equal(lines[0]?.fields.rows, 1);
    } finally {
      await relay.stop();
      await transport.close();
      await s.cleanup();
    }
  });

  test('a batch holding a row deleted since it was streamed is recorded without it, not retried for good', async () => {
    // A replayed commit (after a restart before its batch was confirmed) whose row was discarded, or a row
    // its writer deleted in the same transaction: the record statement can never see it. Waiting on it held
    // every later commit of the slot forever.
    const s = await walSchema(instance.url);
    const outbox = testOutbox({ schema: s.schema });
    try {
      await s.store.transaction((tx) => outbox.enqueue(tx, { topic: 'cb', key: 'k', type: 't', payload: { n: 1 } }));
      const { rows } = await s.pool.query(`select seq_id::text as id from "${s.schema}".outbox`);
      const kept = String(rows[0].id);
      const deleted = String(BigInt(kept) + 1_000n);
      const result = await s.wal.ledger.record(
        [
          { ref: kept, partition: 0, offset: 7n },
          { ref: deleted, partition: 0, offset: 8n },
        ],
        [],
      );
      assert.deepEqual(result, { sent: 1 }, 'the row that is there is recorded; the gone one counts as not changed');
      const { rows: after } = await s.pool.query(`select state, sent_offset::text as off from "${s.schema}".outbox where seq_id = $1`, [
        kept,
      ]);
      assert.deepEqual(after[0], { state: 1, off: '7' });
    } finally {
      await s.cleanup();
    }
  });
});
