import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PostgresOutboxStore } from '../../../src/adapters/postgres/postgres-outbox-store.ts';
import { TableLogAdmin } from '../../../src/adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../../../src/adapters/table-log/table-log-publisher.ts';
import type { LogFields, Logger } from '../../../src/ports/logger.ts';
import type { RelaySource } from '../../../src/ports/outbox-store.ts';
import { Relay } from '../../../src/outbox/relay.ts';
import { freshSchema, inTransaction } from '../../helpers/pg.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';

/** A logger that keeps its error lines, for the test to read. */
function recordingLogger(errors: Array<{ fields: LogFields; message: string }>): Logger {
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: () => {},
    error: (fields, message) => errors.push({ fields, message }),
    child: () => logger,
  };
  return logger;
}

/** P3/O8: the broker acked, but recording the ack (the "callback update") failed: logged and alerted. */
describe('relay: a failed record of the broker answer', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  before(async () => {
    env = await freshSchema('zlrecf');
  });
  after(async () => {
    await env.cleanup();
  });

  test('counts zeroloss_relay_record_failures_total and logs an error; the rows stay unsent and leased', async () => {
    await new TableLogAdmin(env.db, { schema: env.schema }).createTopic('cb', 1);
    const outbox = testOutbox({ schema: env.schema });
    for (let i = 0; i < 3; i++)
      await inTransaction(env.pool, (tx) => outbox.enqueue(tx, { topic: 'cb', key: `k${i}`, type: 'x', payload: { i } }));
    const real = new PostgresOutboxStore(env.db, { schema: env.schema });
    // The store port wrapped: its markSent fails as a dropped connection would, after the broker took the records.
    const source = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === 'markSent') return async () => Promise.reject(new Error('injected fault: connection lost while recording acks'));
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as RelaySource;
    const errors: Array<{ fields: LogFields; message: string }> = [];
    const relay = new Relay({
      sources: source,
      publisher: new TableLogPublisher(env.db, { schema: env.schema }),
      logger: recordingLogger(errors),
    });
    assert.equal((await relay.metrics()).zeroloss_relay_record_failures_total, 0, 'published at zero before any failure');

    await assert.rejects(relay.drain(), /connection lost while recording acks/);

    assert.equal((await relay.metrics()).zeroloss_relay_record_failures_total, 3);
    const line = errors.find((e) => /recording its acks failed/.test(e.message));
    assert.ok(line, `an error line names the failed record: ${JSON.stringify(errors)}`);
    assert.equal(line.fields.rows, 3);
    const { rows } = await env.pool.query(`select count(*)::int as n from "${env.schema}".outbox where state = 0 and lease_until > now()`);
    assert.equal(rows[0].n, 3, 'unsent and leased: the broker check or reconcile marks them sent later (P5)');
    const log = await env.pool.query(`select count(*)::int as n from "${env.schema}".log_record`);
    assert.equal(log.rows[0].n, 3, 'the broker did take them');
  });
});
