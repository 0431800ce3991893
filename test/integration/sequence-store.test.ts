import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PostgresSequenceStore } from '../../src/adapters/postgres/postgres-sequence-store.ts';
import type { ControlMessage } from '../../src/core/control-message.ts';
import { GapWatcher } from '../../src/consumer/gap-watcher.ts';
import type { SequenceGap, SequenceRun, SequenceStore } from '../../src/ports/sequence-store.ts';
import { freshSchema } from '../helpers/pg.ts';

// The statements behind persistent gap detection (C9), on the real Postgres: what each effect transaction
// records, how gaps open, merge and heal.
let env: Awaited<ReturnType<typeof freshSchema>>;
let store: PostgresSequenceStore;
before(async () => {
  env = await freshSchema('zlss');
  store = new PostgresSequenceStore(env.db, { schema: env.schema });
});
after(() => env.cleanup());

const run = (key: string, firstSeq: number, lastSeq: number, offset = lastSeq): SequenceRun => ({
  topic: 't',
  partition: 0,
  producerId: 'p',
  key,
  firstSeq,
  lastSeq,
  offset: BigInt(offset),
});
const record = (group: string, runs: SequenceRun[]) => env.db.transaction((tx) => store.recordRuns(tx, group, runs));
const open = async (group: string) => (await store.openGaps(group, 100)).map((g) => [g.key, g.fromSeq, g.toSeq, g.tail]);

test('the first run of a key sets the baseline; a jump, also inside one transaction, opens a gap; marks never move back', async () => {
  const g = 'g1';
  assert.deepEqual(await record(g, [run('a', 5, 6)]), { found: [], healed: [] });
  const changes = await record(g, [run('a', 8, 8), run('a', 11, 12), run('b', 1, 1)]);
  assert.deepEqual(
    changes.found.map((x) => [x.key, x.fromSeq, x.toSeq]),
    [
      ['a', 7, 7],
      ['a', 9, 10],
    ],
  );
  await record(g, [run('a', 3, 3)]);
  assert.deepEqual(await store.appliedSeqs(g, [{ topic: 't', producerId: 'p', key: 'a' }]), new Map([['t\u0000p\u0000a', 12]]));
});

test('a run filling the front of a gap moves it up and heals it past its end; rolled back, nothing changes', async () => {
  const g = 'g2';
  await record(g, [run('a', 1, 1)]);
  await record(g, [run('a', 6, 6)]);
  assert.deepEqual(await open(g), [['a', 2, 5, false]]);
  await assert.rejects(
    env.db.transaction(async (tx) => {
      await store.recordRuns(tx, g, [run('a', 2, 5)]);
      throw new Error('the effect failed');
    }),
  );
  assert.deepEqual(await open(g), [['a', 2, 5, false]], 'the marks commit only with the effects');
  assert.deepEqual((await record(g, [run('a', 2, 3)])).healed, []);
  assert.deepEqual(await open(g), [['a', 4, 5, false]]);
  const { healed } = await record(g, [run('a', 4, 5)]);
  assert.deepEqual(
    healed.map((x) => [x.fromSeq, x.toSeq, x.healedAt !== null]),
    [[6, 5, true]],
  );
  assert.deepEqual(await open(g), []);
});

test('a tail gap is extended by later marks, cut short by the next record that arrives, and healed by the rest', async () => {
  const g = 'g3';
  await record(g, [run('a', 1, 2)]);
  const tail = { topic: 't', partition: 0, producerId: 'p', key: 'a', fromSeq: 3, toSeq: 4, atOffset: 40n };
  await store.recordTailGap(g, tail);
  await store.recordTailGap(g, { ...tail, toSeq: 6, atOffset: 60n });
  assert.deepEqual(await open(g), [['a', 3, 6, true]]);
  // 5 arrives: only 3..4 are missing now, an ordinary gap.
  await record(g, [run('a', 5, 5)]);
  assert.deepEqual(await open(g), [['a', 3, 4, false]]);
  await record(g, [run('a', 3, 4)]);
  assert.deepEqual(await open(g), []);
});

test('alarms are recorded once in sequence_alarm; repair requests counted with a backoff; dead-lettered numbers heal a gap', async () => {
  const g = 'g4';
  await record(g, [run('a', 1, 1)]);
  await record(g, [run('a', 4, 4)]);
  const [gap] = await store.openGaps(g, 10);
  assert.ok(gap);
  assert.deepEqual(await store.markAlarmed([gap.id]), [gap.id]);
  assert.deepEqual(await store.markAlarmed([gap.id]), [], 'a second watcher does not alarm it again');
  const alarms = await env.db.query(
    `select kind, expected::int, received::int, missing::int from "${env.schema}".sequence_alarm where consumer_group = $1`,
    [g],
  );
  assert.deepEqual(alarms.rows, [{ kind: 'gap', expected: 2, received: 4, missing: 2 }]);
  assert.equal(await store.markRepairRequested(gap.id, 60_000, 0), true);
  assert.equal(await store.markRepairRequested(gap.id, 60_000, 0), false, 'a watcher that read the same count does not request again');
  const [after1] = await store.openGaps(g, 10);
  assert.equal(after1?.repairRequests, 1);
  assert.equal(after1?.repairDue, false, 'the next request waits for the backoff');
  for (const seq of [2, 3]) {
    await env.db.query(
      `insert into "${env.schema}".dead_letter (consumer_group, idempotency_key, message_id, topic, msg_partition, msg_offset, msg_key,
         msg_type, headers, payload, error_code, error, attempts, first_failure_at, last_failure_at)
       values ($1, $2, $2, 't', 0, $3, 'a', 'x', $4::jsonb, '\\x', 'ZL_X', 'failed', 1, now(), now())`,
      [g, `m-${seq}`, seq, JSON.stringify({ 'zl-producer-id': 'p', 'zl-seq': String(seq) })],
    );
  }
  assert.deepEqual(
    (await store.healDeadLettered(g)).map((x) => [x.fromSeq, x.toSeq]),
    [[2, 3]],
  );
  assert.deepEqual(await open(g), []);
});

test('two watchers of one group (two checks at once, or two members) alarm a gap once and send one resend request', async () => {
  const g = 'g5';
  await record(g, [run('w', 1, 1)]);
  await record(g, [run('w', 3, 3)]);
  const sent: ControlMessage[] = [];
  const alarms: SequenceGap[] = [];
  // Both members read the open gaps before either acts on them (the race of two processes): each read
  // waits until the other has read too.
  let reads = 0;
  let bothRead: () => void = () => {};
  const barrier = new Promise<void>((resolve) => (bothRead = resolve));
  const openGaps: SequenceStore['openGaps'] = async (group, limit) => {
    const gaps = await store.openGaps(group, limit);
    if (++reads === 2) bothRead();
    await barrier;
    return gaps;
  };
  const racing = new Proxy(store, {
    get: (target, name) => (name === 'openGaps' ? openGaps : Reflect.get(target, name).bind(target)),
  });
  const watcher = () =>
    new GapWatcher({
      store: racing,
      groupId: g,
      topics: ['t'],
      settings: { gapAlarmAfterMs: 0, autoRepair: true, repairBackoffMs: 60_000, maxRepairRequests: 5 },
      send: (m) => sent.push(m),
      finishedBelow: () => undefined,
      onAlarm: (gap) => alarms.push(gap),
    });
  const [a, b] = [watcher(), watcher()];
  await Promise.all([a.tick(), b.tick()]);
  assert.equal(alarms.length, 1, 'one alarm');
  assert.equal(sent.length, 1, 'one resend request');
  assert.equal((await store.openGaps(g, 10))[0]?.repairRequests, 1);
});
