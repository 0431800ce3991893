import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { kafka } from '../../src/adapters/kafka/kafka-transport.ts';
import { postgres } from '../../src/entry/postgres.ts';
import { createLotteryTables } from '../../src/examples/lottery/lottery-tables.ts';
import { BROKERS, createTopics, readTopic, uniqueId } from '../helpers/consumer-fixtures.ts';
import { zeroloss, zerolossJson } from '../helpers/ops-cli.ts';
import { PG_URL, uniqueName } from '../helpers/pg.ts';

/**
 * Issue 16, the operations tools on a state-column source declared in the settings file: `status` counts
 * its unsent and parked rows, `parked list|release|discard` act on its parked rows (audited), a discarded
 * row stops holding its key back without its business row being touched, and `cleanup` never deletes
 * business rows.
 */
describe('status and parked on a state-column source from --config-file', () => {
  const schema = uniqueName('zlclisrcops');
  const topic = uniqueId('zl-cli-src-ops');
  const store = postgres(PG_URL, { schema });
  const dir = mkdtempSync(path.join(tmpdir(), 'zl-cli-sources-ops-'));
  const config = path.join(dir, 'zeroloss.json');
  const base = ['--pg', PG_URL, '--schema', schema, '--config-file', config];
  const declaration = {
    name: 'lottery_award',
    table: 'user_strategy_export',
    tableSchema: schema,
    idColumn: 'id',
    keyColumn: 'u_id',
    stateColumn: 'mq_state',
    createdColumn: 'create_time',
    modifiedColumn: 'modified_time',
    topic,
    type: 'lottery.award.{award_type}',
    payload: { orderId: 'order_id', userId: 'u_id' },
  };
  // The relay's own path to a parked row: claimed, encoded and stored, then parked by the relay's decision.
  const source = store.stateColumnSource<Record<string, unknown>>({
    name: declaration.name,
    table: declaration.table,
    tableSchema: schema,
    idColumn: 'id',
    keyColumn: 'u_id',
    stateColumn: 'mq_state',
    modifiedColumn: 'modified_time',
    toMessage: (row) => ({ topic, key: String(row.u_id), type: 'lottery.award.coupon', payload: { orderId: row.order_id } }),
  });
  const insert = async (u: string, order: string) => {
    const { rows } = await store.db.query<{ id: string }>(
      `insert into "${schema}".user_strategy_export (u_id, activity_id, order_id, strategy_id, award_id, award_type, award_name)
       values ($1, 1, $2, 7, 'A003', 'coupon', '50-off coupon') returning id::text`,
      [u, order],
    );
    return rows[0]?.id as string;
  };
  /** Claims everything due as the test relay and parks the rows of `park` (row ids); the rest go back unsent. */
  const parkRows = async (park: string[]) => {
    const claimed = await source.claim('test-relay', 100, 60_000);
    await source.markFailed(
      'test-relay',
      claimed.map((c) => ({
        ref: c.ref,
        error: park.includes(c.ref) ? 'rejected for good: test' : 'not this time',
        action: park.includes(c.ref) ? ('park' as const) : ('release' as const),
        delayMs: 0,
        charge: park.includes(c.ref),
      })),
    );
    return new Map(claimed.map((c) => [c.ref, c.messageId]));
  };
  const stateOf = async () =>
    new Map(
      (await store.db.query<{ id: string; mq_state: number }>(`select id::text, mq_state from "${schema}".user_strategy_export`)).rows.map(
        (r) => [r.id, Number(r.mq_state)],
      ),
    );
  let aId = '';
  const relayOnce = () => zeroloss(['relay', ...base, '--kafka', BROKERS.join(','), '--only-sources', '--once']);

  before(async () => {
    await store.migrate();
    await createLotteryTables(store.db, schema);
    await createTopics([topic], 1);
    writeFileSync(config, JSON.stringify({ sources: [declaration] }));
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await store.db.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
    await store.close();
  });

  test('status counts, list shows, release sends again in key order; discard gives up without touching the business row', async () => {
    const a = await insert('u-1', 'order-a');
    const b = await insert('u-1', 'order-b');
    const c = await insert('u-2', 'order-c');
    const ids = await parkRows([a]);
    aId = ids.get(a) as string;
    assert.ok(aId);

    type StatusJson = {
      sources: Array<{ name: string; pending: number; failed: number; parked: number; parkedRows: Array<{ messageId: string }> }>;
    };
    const s1 = await zerolossJson<StatusJson>(['status', ...base]);
    assert.equal(s1.code, 1, 'a parked source row makes status exit 1');
    assert.deepEqual(
      s1.json.sources.map((x) => [x.name, x.pending, x.failed, x.parked, x.parkedRows.map((p) => p.messageId)]),
      [['lottery_award', 2, 0, 1, [aId]]],
    );
    const list = await zerolossJson<{ sourceRows: Array<{ messageId: string; rowId: string; key: string; lastError: string }> }>([
      'parked',
      'list',
      ...base,
    ]);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(
      list.json.sourceRows.map((r) => [r.messageId, r.rowId, r.key, r.lastError]),
      [[aId, a, 'u-1', 'rejected for good: test']],
    );

    // The parked row holds its key: u-1's later award waits, u-2's goes.
    assert.equal((await relayOnce()).code, 0);
    assert.deepEqual(
      [...(await stateOf())].sort(),
      [
        [a, 3],
        [b, 0],
        [c, 1],
      ].sort(),
    );

    const unknown = await zeroloss(['parked', 'release', 'no-such-id', ...base]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stdout, /no-such-id: not parked/);
    const released = await zerolossJson<{ released: string[] }>([
      'parked',
      'release',
      aId,
      ...base,
      '--actor',
      'ops-test',
      '--reason',
      'fixed',
    ]);
    assert.equal(released.code, 0, released.stderr);
    assert.deepEqual(released.json.released, [aId]);
    assert.equal((await stateOf()).get(a), 0, 'its state column back to pending');

    assert.equal((await relayOnce()).code, 0);
    assert.deepEqual(
      [...(await stateOf())].sort(),
      [
        [a, 1],
        [b, 1],
        [c, 1],
      ].sort(),
    );
    const records = await readTopic(topic, 3, 30_000);
    assert.deepEqual(
      records.map((r) => JSON.parse(r.value.toString()).orderId),
      ['order-c', 'order-a', 'order-b'],
      'u-1 in id order: the released row first',
    );
    assert.equal(records[1]?.headers['zl-id'], aId, 'sent under the message id it was parked with');

    // Discard: the row is given up, its business row untouched, its key's later row free to go.
    const d = await insert('u-3', 'order-d');
    const e = await insert('u-3', 'order-e');
    const dId = (await parkRows([d])).get(d) as string;
    const noReason = await zeroloss(['parked', 'discard', dId, ...base]);
    assert.equal(noReason.code, 2);
    assert.match(noReason.stderr, /a reason is required/);
    const discarded = await zerolossJson<{ discarded: string[] }>(['parked', 'discard', dId, ...base, '--reason', 'handed out by hand']);
    assert.equal(discarded.code, 0, discarded.stderr);
    assert.deepEqual(discarded.json.discarded, [dId]);
    assert.equal((await stateOf()).get(d), 3, 'the business row is kept as it was');

    assert.equal((await relayOnce()).code, 0);
    assert.equal((await stateOf()).get(e), 1, 'the discarded row no longer holds its key back');
    assert.equal((await stateOf()).get(d), 3, 'a discarded row is never sent');
    const after = await readTopic(topic, 4, 30_000);
    assert.deepEqual(
      after.map((r) => JSON.parse(r.value.toString()).orderId),
      ['order-c', 'order-a', 'order-b', 'order-e'],
    );
    const s2 = await zerolossJson<StatusJson>(['status', ...base]);
    assert.equal(s2.code, 0, JSON.stringify(s2.json.sources));
    assert.deepEqual(
      s2.json.sources.map((x) => [x.pending, x.failed, x.parked]),
      [[0, 0, 0]],
    );

    const { rows: audit } = await store.db.query<{ action: string; actor: string; message_id: string; reason: string; payload: string }>(
      `select action, actor, message_id, reason, details ->> 'payload_base64' as payload from "${schema}".operation_audit order by id`,
    );
    assert.deepEqual(
      audit.map((r) => [r.action, r.message_id, r.reason]),
      [
        ['source.release', aId, 'fixed'],
        ['source.discard', dId, 'handed out by hand'],
      ],
    );
    assert.equal(audit[0]?.actor, 'ops-test');
    assert.deepEqual(JSON.parse(Buffer.from(audit[1]?.payload ?? '', 'base64').toString()), { orderId: 'order-d' });
  });

  test('trace finds a source row by message id: its state changes, audit, and its copy at the recorded position', async () => {
    type TraceJson = {
      source: string;
      outbox: { stateName: string; topic: string; key: string; seqId: string; sentPartition: number };
      transitions: Array<{ from: number; to: number; actor: string }>;
      broker: { recorded: { check: string }; copies: Array<{ kind: string }> };
      steps: Array<{ text: string }>;
      stop: { stage: string };
    };
    const t = await zerolossJson<TraceJson>(['trace', aId, ...base, '--kafka', BROKERS.join(',')]);
    assert.equal(t.code, 1, 'no consumer group applied it: the trail stops at the broker');
    assert.equal(t.json.source, 'lottery_award');
    assert.deepEqual([t.json.outbox.stateName, t.json.outbox.topic, t.json.outbox.key], ['sent', topic, 'u-1']);
    assert.deepEqual(
      t.json.transitions.map((x) => [x.from, x.to, x.actor]),
      [
        [0, 3, 'test-relay'],
        [3, 0, 'ops-test'],
        [0, 1, t.json.transitions[2]?.actor],
      ],
    );
    assert.equal(t.json.broker.recorded.check, 'found');
    assert.deepEqual(
      t.json.broker.copies.map((c) => c.kind),
      ['main'],
    );
    assert.match(t.json.steps[0]?.text ?? '', /committed to source lottery_award \(row \d+\)/);
    assert.ok(t.json.steps.some((x) => x.text.startsWith('source.release by ops-test')));
    assert.equal(t.json.stop.stage, 'broker');
    const text = await zeroloss(['trace', aId, ...base, '--no-broker']);
    assert.match(text.stdout, /source {5}lottery_award, row \d+/);
  });

  test('resend re-publishes a sent source row byte for byte, records it, and selects by window in id order', async () => {
    type ResendJson = { selected: number; resent: string[]; skipped: Array<{ messageId: string }>; notFound: string[] };
    const dry = await zerolossJson<ResendJson>([
      'resend',
      '--since',
      '1h',
      '--topic',
      topic,
      '--dry-run',
      ...base,
      '--kafka',
      BROKERS.join(','),
    ]);
    assert.equal(dry.code, 0, dry.stderr);
    const ids = new Map(
      (await store.db.query<{ row_id: string; message_id: string }>(`select row_id, message_id from "${schema}".source_row`)).rows.map(
        (r) => [r.row_id, r.message_id],
      ),
    );
    const byOrder = (
      await store.db.query<{ id: string; order_id: string }>(`select id::text, order_id from "${schema}".user_strategy_export order by id`)
    ).rows;
    const idOf = (order: string) => ids.get(byOrder.find((r) => r.order_id === order)?.id ?? '') as string;
    assert.deepEqual(dry.json.resent, ['order-a', 'order-b', 'order-c', 'order-e'].map(idOf), 'sent rows, in id order');
    assert.deepEqual(
      dry.json.skipped.map((x) => x.messageId),
      [idOf('order-d')],
      'the discarded row is not sent',
    );

    const r = await zerolossJson<ResendJson>([
      'resend',
      '--ids',
      `${aId},no-such-id`,
      '--reason',
      'broker lost it',
      ...base,
      '--kafka',
      BROKERS.join(','),
    ]);
    assert.equal(r.code, 1, 'one id not found');
    assert.deepEqual([r.json.resent, r.json.notFound], [[aId], ['no-such-id']]);
    const records = await readTopic(topic, 5, 30_000);
    const copies = records.filter((x) => x.headers['zl-id'] === aId);
    assert.equal(copies.length, 2);
    assert.deepEqual(copies[1]?.value, copies[0]?.value, 'byte for byte');
    assert.deepEqual(copies[1]?.headers, copies[0]?.headers);
    const { rows } = await store.db.query<{ sent_offset: string }>(
      `select sent_offset::text from "${schema}".source_row where message_id = $1`,
      [aId],
    );
    assert.equal(rows[0]?.sent_offset, copies[1]?.offset.toString(), 'the new position recorded');
    const { rows: audit } = await store.db.query<{ reason: string }>(
      `select reason from "${schema}".operation_audit where action = 'source.resend' and message_id = $1`,
      [aId],
    );
    assert.deepEqual(
      audit.map((a) => a.reason),
      ['broker lost it'],
    );
  });

  test('reconcile on the source: a row the broker holds but whose ack was never recorded is marked sent, not resent', async () => {
    const f = await insert('u-9', 'order-f');
    // The relay claims the row and the broker takes the message, then the relay dies before recording it.
    const [claimed] = await source.claim('dying-relay', 10, 60_000);
    assert.equal(claimed?.ref, f);
    const transport = kafka({ brokers: BROKERS });
    try {
      const [outcome] = await transport.publisher.publish([claimed.record]);
      assert.ok(outcome?.ok);
    } finally {
      await transport.close();
    }
    type Report = { source?: string; verdict: string; ackedNotMarked: { ids: string[]; marked: boolean }; counts: { committed: number } };
    const r = await zerolossJson<Report[]>(['reconcile', '--since', '1h', ...base, '--kafka', BROKERS.join(',')]);
    assert.equal(r.code, 0, `${r.stderr} ${JSON.stringify(r.json)}`);
    assert.deepEqual(
      r.json.map((x) => x.source ?? 'outbox'),
      ['outbox', 'lottery_award'],
    );
    const src = r.json[1] as Report;
    assert.deepEqual(src.ackedNotMarked, { ids: [claimed.messageId], marked: true });
    assert.equal(src.counts.committed, 5, 'a, b, c, e and f: the discarded row is no longer expected');
    assert.equal((await stateOf()).get(f), 1, 'marked sent');
    const records = await readTopic(topic, 6, 30_000);
    assert.equal(records.filter((x) => x.headers['zl-id'] === claimed.messageId).length, 1, 'never resent');
    const again = await zerolossJson<Report[]>(['reconcile', '--since', '1h', ...base, '--kafka', BROKERS.join(',')]);
    assert.deepEqual(
      again.json.map((x) => x.verdict),
      ['clean', 'clean'],
    );
  });

  test('reconcile --repair re-publishes a sent source row the broker does not hold', async () => {
    const g = await insert('u-10', 'order-g');
    // Recorded as sent, but the broker never got it (or lost it): what retention or a deleted record leaves.
    const [claimed] = await source.claim('test-relay', 10, 60_000);
    assert.equal(claimed?.ref, g);
    await source.markSent('test-relay', [{ ref: g, partition: 0, offset: 999_999n }]);
    type Report = { source?: string; verdict: string; missing: { broker: string[] }; repair?: { resent: string[] } };
    const r = await zerolossJson<Report[]>(['reconcile', '--since', '1h', '--repair', ...base, '--kafka', BROKERS.join(',')]);
    const src = r.json[1] as Report;
    assert.deepEqual(
      [src.source, src.missing.broker, src.repair?.resent, src.verdict],
      ['lottery_award', [claimed.messageId], [claimed.messageId], 'repaired'],
    );
    assert.equal(r.code, 3, 'exit 3: repaired');
    const records = await readTopic(topic, 7, 30_000);
    const copy = records.find((x) => x.headers['zl-id'] === claimed.messageId);
    assert.deepEqual(copy?.value, claimed.record.value, 'the stored bytes');
  });

  test('cleanup never deletes business rows nor their bookkeeping', async () => {
    const before = await store.db.query<{ n: number; book: number }>(
      `select (select count(*) from "${schema}".user_strategy_export)::int as n, (select count(*) from "${schema}".source_row)::int as book`,
    );
    assert.ok((before.rows[0]?.n ?? 0) >= 5);
    const r = await zeroloss([
      'cleanup',
      '--pg',
      PG_URL,
      '--schema',
      schema,
      '--outbox',
      '1ms',
      '--inbox',
      '2ms',
      '--replay-horizon',
      '1ms',
      '--dead-letters',
      '1ms',
      '--history',
      '1ms',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const afterCleanup = await store.db.query<{ n: number; book: number }>(
      `select (select count(*) from "${schema}".user_strategy_export)::int as n, (select count(*) from "${schema}".source_row)::int as book`,
    );
    assert.deepEqual(afterCleanup.rows[0], before.rows[0]);
  });
});
