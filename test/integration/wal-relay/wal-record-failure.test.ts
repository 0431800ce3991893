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
});
