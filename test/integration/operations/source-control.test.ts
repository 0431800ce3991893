import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PostgresReceiptStore } from '../../../src/adapters/postgres/postgres-receipt-store.ts';
import { CONTROL_TOPIC } from '../../../src/core/control-message.ts';
import { postgres } from '../../../src/entry/postgres.ts';
import { tableLog } from '../../../src/entry/table-log.ts';
import { createConsumer, createOutbox, createRelay } from '../../../src/index.ts';
import { confirmations } from '../../../src/operations/confirmations.ts';
import { resendRequestHandler } from '../../../src/operations/control-responder.ts';
import type { Consumer } from '../../../src/consumer/consumer.ts';
import type { SequenceGap } from '../../../src/ports/sequence-store.ts';
import { freePort } from '../../helpers/consumer-workload.ts';
import { zerolossJson } from '../../helpers/ops-cli.ts';
import { PG_URL, uniqueName } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

// Issue 16: the control channel for a state-column source (the lottery's user_strategy_export shape). The
// relay sends the business rows over the table log, a test deletes broker records, and a real
// `zeroloss serve --config-file` answers the consumer's resend requests from source_row, publishes the
// source's producer marks and stores the receipts of its messages.
const schema = uniqueName('zlsrcctl');
const store = postgres(PG_URL, { schema, max: 10 });
const transport = tableLog(store, { subscriber: { heartbeatIntervalMs: 100, sessionTimeoutMs: 2_000, pollIntervalMs: 50 } });
const topic = 'awards';
const dir = mkdtempSync(path.join(tmpdir(), 'zl-source-control-'));
const config = path.join(dir, 'zeroloss.json');
const declaration = {
  name: 'lottery_award',
  table: 'award',
  tableSchema: schema,
  idColumn: 'id',
  keyColumn: 'u_id',
  stateColumn: 'mq_state',
  modifiedColumn: 'modified_time',
  createdColumn: 'create_time',
  producerId: 'lottery',
  topic,
  type: 'award',
  payload: ['u_id'],
};
const source = store.stateColumnSource<{ id: string; u_id: string }>({
  ...declaration,
  toMessage: (row) => ({ topic, key: row.u_id, type: 'award', payload: { u_id: row.u_id } }),
});
const relay = createRelay({ store, transport, sources: [source], pollIntervalMs: 50 });
let consumer: Consumer | undefined;
const group = uniqueName('g');
const lost = { b2: '', t2: '' };
let serve: { child: ChildProcess; output: () => string } | undefined;

before(async () => {
  await store.migrate();
  await transport.ensureTopic(topic, 1);
  await transport.ensureTopic(CONTROL_TOPIC, 1);
  await store.db.query(
    `create table "${schema}".award (id bigserial primary key, u_id text not null, mq_state smallint not null default 0,
       create_time timestamptz not null default now(), modified_time timestamptz not null default now())`,
  );
  await store.db.query(`create table "${schema}".effect (message_id text primary key, msg_key text not null, seq int not null)`);
  writeFileSync(config, JSON.stringify({ sources: [declaration] }));
  await relay.start();
});
after(async () => {
  await consumer?.stop();
  if (serve && serve.child.exitCode === null) {
    const exited = new Promise((resolve) => serve?.child.once('exit', resolve));
    serve.child.kill('SIGTERM');
    await exited;
  }
  await relay.stop();
  await transport.close();
  rmSync(dir, { recursive: true, force: true });
  await store.db.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
  await store.close();
});

const applied = async (key: string) =>
  (await store.db.query(`select seq from "${schema}".effect where msg_key = $1 order by seq`, [key])).rows.map((r) => Number(r.seq));

/** The message id of the source row of (key, seq), as the relay stored it at the first claim. */
const idOf = async (key: string, seq: number) =>
  String(
    (await store.db.query(`select message_id from "${schema}".source_row where msg_key = $1 and key_seq = $2`, [key, seq])).rows[0]
      ?.message_id,
  );

test('a lost source message is found, resent by zeroloss serve from source_row and applied once; so is a lost tail (producer marks)', async () => {
  // b: four rows, the second lost in the middle (a later record reveals it); t: two rows, the last lost
  // (only the producer marks reveal it); z after them, so the consumer reads past t 2's offset.
  // The application's write wakes the relay (source.notify) in its transaction, as a state-column source asks.
  await store.transaction(async (tx) => {
    await tx.query(
      `insert into "${schema}".award (u_id) select k from unnest(array['b','b','b','b','t','t','z']) with ordinality as x(k, n) order by n`,
    );
    await source.notify(tx);
  });
  await waitFor(async () => (await store.db.query(`select 1 from "${schema}".award where mq_state <> 1`)).rows.length === 0, {
    what: 'the rows relayed',
  });
  lost.b2 = await idOf('b', 2);
  lost.t2 = await idOf('t', 2);
  for (const [key, seq] of [
    ['b', 2],
    ['t', 2],
  ] as const) {
    const { rows } = await store.db.query(
      `delete from "${schema}".log_record where topic = $1 and msg_key = $2 and headers ->> 'zl-seq' = $3 returning headers ->> 'zl-producer-id' as producer`,
      [topic, key, String(seq)],
    );
    assert.deepEqual(rows, [{ producer: 'lottery' }]);
  }

  serve = await spawnServe();
  consumer = createConsumer({
    store,
    transport,
    groupId: group,
    topics: [topic],
    commitIntervalMs: 50,
    tracing: false,
    control: { gapAlarmAfterMs: 150, checkEveryMs: 50, repairBackoffMs: 300, autoRepair: true, listen: true, receipts: true },
  });
  consumer.handle('award', async (m, { tx }) => {
    await tx.query(`insert into "${schema}".effect (message_id, msg_key, seq) values ($1, $2, $3)`, [m.id, m.key, m.seq]);
  });
  const alarms: SequenceGap[] = [];
  consumer.on('sequence-gap-alarm', (g) => alarms.push(g));
  await consumer.start();

  try {
    await waitFor(async () => (await applied('b')).length === 4 && (await applied('t')).length === 2, {
      what: 'b 2 and t 2 resent and applied',
      timeoutMs: 15_000,
    });
    assert.deepEqual([await applied('b'), await applied('t'), await applied('z')], [[1, 2, 3, 4], [1, 2], [1]]);
    assert.deepEqual(alarms.map((g) => [g.producerId, g.key, g.fromSeq, g.toSeq, g.tail]).sort(), [
      ['lottery', 'b', 2, 2, false],
      ['lottery', 't', 2, 2, true],
    ]);
    for (const id of [lost.b2, lost.t2]) {
      const inbox = await store.db.query(`select count(*)::int as n from "${schema}".inbox where consumer_group = $1 and message_id = $2`, [
        group,
        id,
      ]);
      assert.equal(inbox.rows[0]?.n, 1, `${id} applied once`);
      const audit = await store.db.query(
        `select actor, subject from "${schema}".operation_audit where action = 'source.resend' and message_id = $1`,
        [id],
      );
      assert.ok(audit.rows.length >= 1, `${id}: resent through the audited path`);
      assert.ok(audit.rows.every((r) => r.actor === `control:${group}` && String(r.subject).startsWith('source:lottery_award:')));
    }
    await waitFor(async () => (await store.sequences.openGaps(group, 10)).length === 0, { what: 'the gaps healed' });
    await waitFor(() => serve?.output().includes(`resend request of ${group}: 1 resent`), { what: "serve's resend log line" });
  } catch (error) {
    throw new Error(`${(error as Error).message}\nserve said:\n${serve?.output()}`, { cause: error });
  }
});

test("serve stores the consumer's receipts of source messages: confirmations, status's group summary and trace show them", async () => {
  try {
    const all = (await store.db.query(`select message_id from "${schema}".source_row order by row_id::bigint`)).rows.map((r) =>
      String(r.message_id),
    );
    const receipts = new PostgresReceiptStore(store.db, { schema });
    await waitFor(async () => (await confirmations({ store: receipts }, all)).every((c) => c.applied.length === 1), {
      what: 'receipts of the source messages stored by serve',
    });
    const [c] = await confirmations({ store: receipts }, [lost.b2]);
    assert.deepEqual([c?.found, c?.topic, c?.applied.map((a) => a.group), c?.notConfirmed], [true, topic, [group], []]);
    assert.equal(c?.sent?.partition, 0, 'sent: where the resend put it');
    const summary = await receipts.groupConfirmations(group, 600_000, 0);
    assert.deepEqual([summary.sent, summary.confirmed, summary.topics], [7, 7, [topic]], 'status counts the source messages');

    const traced = await zerolossJson<{ source?: string; confirmations?: { applied: Array<{ group: string }> } }>([
      'trace',
      lost.t2,
      '--pg',
      PG_URL,
      '--schema',
      schema,
      '--config-file',
      config,
      '--no-broker',
      '--json',
    ]);
    assert.equal(traced.json.source, 'lottery_award');
    assert.deepEqual(
      traced.json.confirmations?.applied.map((a) => a.group),
      [group],
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}\nserve said:\n${serve?.output()}`, { cause: error });
  }
});

test("a source sharing the outbox's producer id: a request spanning both is resent in sequence order, the marks take the newest of both", async () => {
  await store.db.query(
    `create table "${schema}".parcel (id bigserial primary key, u_id text not null, mq_state smallint not null default 0,
       modified_time timestamptz not null default now())`,
  );
  const parcels = uniqueName('parcels');
  await transport.ensureTopic(parcels, 1);
  const parcel = store.stateColumnSource<{ u_id: string }>({
    name: 'parcel',
    table: 'parcel',
    tableSchema: schema,
    idColumn: 'id',
    keyColumn: 'u_id',
    stateColumn: 'mq_state',
    modifiedColumn: 'modified_time',
    producerId: 'shop',
    toMessage: (row) => ({ topic: parcels, key: row.u_id, type: 'parcel', payload: {} }),
  });
  const outbox = createOutbox({ store, producerId: 'shop' });
  const shopRelay = createRelay({ store, transport, sources: [store.relaySource, parcel], pollIntervalMs: 50 });
  const allSent = async () =>
    (
      await store.db.query(
        `select 1 from "${schema}".outbox where state <> 1 union all select 1 from "${schema}".parcel where mq_state <> 1`,
      )
    ).rows.length === 0;
  await shopRelay.start();
  try {
    // Key p numbered 1 (outbox), 2 (source), 3 (outbox), 4 (source): each sent before the next is written,
    // so the source's number (drawn at its claim) falls between the outbox's.
    for (const from of ['outbox', 'source', 'outbox', 'source']) {
      if (from === 'outbox') await store.transaction((tx) => outbox.enqueue(tx, { topic: parcels, key: 'p', type: 'parcel', payload: {} }));
      else
        await store.transaction(async (tx) => {
          await tx.query(`insert into "${schema}".parcel (u_id) values ('p')`);
          await parcel.notify(tx);
        });
      await waitFor(allSent, { what: `the ${from} row sent` });
    }
    const range = { producerId: 'shop', topic: parcels, key: 'p', fromSeq: 1, toSeq: 4 };
    const rows = await store.sequences.idsInRange({ ...range, sources: ['parcel'] });
    assert.deepEqual(
      rows.map((r) => r.source),
      [null, 'parcel', null, 'parcel'],
    );
    const marks = await store.sequences.recentSentMarks(60_000, 1_000, [{ name: 'parcel', producerId: 'shop' }]);
    assert.deepEqual(
      marks.filter((m) => m.topic === parcels).map((m) => [m.producerId, m.key, m.seq, m.partition, m.offset]),
      [['shop', 'p', 4, 0, 3n]],
    );

    const published: string[] = [];
    const publisher = {
      publish: (records: Parameters<typeof transport.publisher.publish>[0]) => {
        published.push(...records.map((r) => r.headers['zl-seq'] ?? '?'));
        return transport.publisher.publish(records);
      },
      close: async () => {},
    };
    const answer = resendRequestHandler({ sequences: store.sequences, outbox: store.operations, sources: [parcel], publisher });
    await answer({ kind: 'resend-request', group: 'g-shop', ...range, at: new Date().toISOString() });
    assert.deepEqual(published, ['1', '2', '3', '4'], "one key's messages resent in sequence order");
    const audit = await store.db.query(
      `select action, count(*)::int as n from "${schema}".operation_audit where actor = 'control:g-shop' group by action order by action`,
    );
    assert.deepEqual(audit.rows, [
      { action: 'outbox.resend', n: 2 },
      { action: 'source.resend', n: 2 },
    ]);
  } finally {
    await shopRelay.stop();
  }
});

/** `zeroloss serve --config-file` on the test's schema and table log, producer marks every 200 ms; its stderr kept. */
async function spawnServe(): Promise<{ child: ChildProcess; output: () => string }> {
  const port = await freePort();
  const args = ['serve', '--pg', PG_URL, '--schema', schema, '--table-log', '--config-file', config, '--http-host', '127.0.0.1'];
  let output = '';
  const child = spawn(
    process.execPath,
    [MAIN, ...args, '--http-port', String(port), '--marks-every', '200ms', '--reconcile-every', 'off', '--nightly-hour', 'off'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ZEROLOSS_LOG_FORMAT: 'json' } },
  );
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  return { child, output: () => output };
}
