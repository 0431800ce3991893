import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PostgresReceiptStore } from '../../../src/adapters/postgres/postgres-receipt-store.ts';
import { CONTROL_TOPIC, encodeControl } from '../../../src/core/control-message.ts';
import { postgres } from '../../../src/entry/postgres.ts';
import { tableLog } from '../../../src/entry/table-log.ts';
import { createOutbox } from '../../../src/index.ts';
import { confirmations } from '../../../src/operations/confirmations.ts';
import { freePort } from '../../helpers/consumer-workload.ts';
import { PG_URL, uniqueName } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

/** `zeroloss serve` is the producer's receipt listener: what a consumer group reports lands in delivery_receipt. */
test('zeroloss serve stores the receipts of its outbox messages from the control channel, and only those', async () => {
  const schema = uniqueName('zlsrcpt');
  const store = postgres(PG_URL, { schema });
  const transport = tableLog(store);
  const receipts = new PostgresReceiptStore(store.db, { schema });
  let output = '';
  let child: ReturnType<typeof spawn> | undefined;
  try {
    await store.migrate();
    await transport.ensureTopic(CONTROL_TOPIC, 3);
    const outbox = createOutbox({ store, producerId: 'orders' });
    const { id } = await store.transaction((tx) => outbox.enqueue(tx, { topic: 'orders', key: 'k', type: 'x', payload: 1 }));
    const at = new Date().toISOString();
    const applied = [id, 'another-producers-id'].map((messageId) => ({ messageId, producerId: 'orders', topic: 'orders' }));
    await transport.publisher.publish([encodeControl({ kind: 'receipts', group: 'billing', at, applied })]);

    const port = await freePort();
    const args = ['serve', '--pg', PG_URL, '--schema', schema, '--table-log', '--http-host', '127.0.0.1', '--http-port', String(port)];
    child = spawn(process.execPath, [MAIN, ...args, '--marks-every', 'off', '--reconcile-every', 'off', '--nightly-hour', 'off'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    await waitFor(async () => (await confirmations({ store: receipts }, [id]))[0]?.applied.length === 1, {
      timeoutMs: 30_000,
      what: 'the receipt stored by serve',
    });
    const [c] = await confirmations({ store: receipts }, [id]);
    assert.deepEqual(
      c?.applied.map((a) => [a.group, a.appliedAt]),
      [['billing', at]],
    );
    const { rows } = await store.db.query(`select count(*)::int as n from "${schema}".delivery_receipt`);
    assert.equal(rows[0]?.n, 1, "another producer's message is not stored");
  } catch (error) {
    throw new Error(`${(error as Error).message}\nserve said:\n${output}`, { cause: error });
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    await transport.close();
    await store.db.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
    await store.close();
  }
});
