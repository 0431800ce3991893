import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { KafkaPublisher } from '../../src/adapters/kafka/kafka-publisher.ts';
import { StateColumnSource } from '../../src/adapters/postgres/state-column-source.ts';
import { Relay } from '../../src/outbox/relay.ts';
import { KAFKA_BROKERS, createTopic, readTopic, uniqueTopic } from '../helpers/kafka.ts';
import { freshSchema } from '../helpers/pg.ts';

let env: Awaited<ReturnType<typeof freshSchema>>;
before(async () => {
  env = await freshSchema('zlscs');
});
after(async () => {
  await env.cleanup();
});

type Award = { id: number; u_id: string };
const fast = { backoff: { baseMs: 20, maxMs: 200, jitter: 0 }, idleIntervalMs: 200, backlogIntervalMs: 100, minIntervalMs: 5 };

async function awardTable(name: string): Promise<string> {
  await env.db.query(
    `create table "${env.schema}".${name} (id bigserial primary key, u_id text not null, mq_state smallint not null default 0, modified_time timestamptz not null default now())`,
  );
  return name;
}

function source(table: string, topic: string, extra: { producerId?: string; type?: (r: Award) => string } = {}): StateColumnSource<Award> {
  return new StateColumnSource<Award>(env.db, {
    name: table,
    table,
    tableSchema: env.schema,
    schema: env.schema,
    idColumn: 'id',
    stateColumn: 'mq_state',
    modifiedColumn: 'modified_time',
    keyColumn: 'u_id',
    ...(extra.producerId ? { producerId: extra.producerId } : {}),
    toMessage: (r) => ({ topic, key: r.u_id, type: extra.type?.(r) ?? 'award', payload: { id: r.id } }),
  });
}

// C9 needs a gapless sequence per (producer, key): a state-column message carried zl-seq 0. Two relays race
// over one table; each key's records on the topic must number 1..n in the rows' id order.
test('two relays give a state-column key a gapless sequence in id order, starting at 1', async () => {
  const table = await awardTable('seq_award');
  const topic = uniqueTopic('zl-seq-award');
  await createTopic(topic, 3);
  const keys = 6;
  const perKey = 20;
  // Several inserts per statement and keys interleaved, so both relays hold rows of every key in turn.
  for (let batch = 0; batch < perKey; batch++) {
    await env.db.query(`insert into "${env.schema}".${table} (u_id) select 'u' || g from generate_series(1, $1) g`, [keys]);
  }
  const publisher = new KafkaPublisher({ brokers: KAFKA_BROKERS, deliveryTimeoutMs: 5_000 });
  const relays = [0, 1].map(
    (i) => new Relay({ sources: source(table, topic), publisher, db: env.db, config: { ...fast, batchSize: 4, instanceId: `relay-${i}` } }),
  );
  try {
    await Promise.all(relays.map((r) => r.start()));
    const records = await readTopic(topic, { done: (rs) => rs.length >= keys * perKey, timeoutMs: 20_000 });
    assert.equal(records.length, keys * perKey, 'every row published once');
    for (let k = 1; k <= keys; k++) {
      const ofKey = records.filter((r) => r.key === `u${k}`);
      assert.deepEqual(
        ofKey.map((r) => Number(r.headers['zl-seq'])),
        Array.from({ length: perKey }, (_, i) => i + 1),
        `key u${k}: sequence in topic order`,
      );
      const ids = ofKey.map((r) => (JSON.parse(r.value.toString()) as { id: number }).id);
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => a - b),
        `key u${k}: rows in id order`,
      );
      assert.ok(ofKey.every((r) => r.headers['zl-producer-id'] === table, 'producer id: the source name'));
    }
    const { rows } = await env.db.query<{ actor: string }>(
      `select distinct actor from "${env.schema}".outbox_transition where to_state = 1 order by actor`,
    );
    assert.deepEqual(
      rows.map((r) => r.actor),
      ['relay-0', 'relay-1'],
      'both relays sent rows',
    );
  } finally {
    await Promise.all(relays.map((r) => r.stop()));
    await publisher.close();
  }
});

// The same at the claim level, with more claimers and failed sends retried: a key's numbers still follow
// its id order, and a row keeps its number on every attempt.
test('racing claimers with retries number each key in id order, once per row', async () => {
  const table = await awardTable('seq_race');
  await env.db.query(`insert into "${env.schema}".${table} (u_id) select 'u' || (g % 10) from generate_series(1, 300) g`);
  const s = source(table, 'awards');
  const seqs = new Map<string, { key: string; seq: string }>();
  let changed = 0;
  const deadline = Date.now() + 15_000;
  const unsent = async () =>
    (await env.db.query<{ n: number }>(`select count(*)::int as n from "${env.schema}".${table} where mq_state <> 1`)).rows[0]?.n ?? -1;
  await Promise.all(
    Array.from({ length: 4 }, (_, w) =>
      (async () => {
        const owner = `relay-${w}`;
        while (Date.now() < deadline) {
          const rows = await s.claim(owner, 7, 60_000);
          if (rows.length === 0) {
            if ((await unsent()) === 0) return;
            continue;
          }
          for (const r of rows) {
            const seen = seqs.get(r.ref);
            const now = { key: r.record.key, seq: r.record.headers['zl-seq'] ?? '' };
            if (seen && seen.seq !== now.seq) changed++;
            seqs.set(r.ref, now);
          }
          // Every seventh row fails its first attempt and is retried.
          const fail = rows.filter((r) => Number(r.ref) % 7 === 0 && r.attempt === 1);
          await s.markFailed(
            owner,
            fail.map((r) => ({ ref: r.ref, error: 'broker said no', action: 'retry' as const, delayMs: 0, charge: true })),
          );
          await s.markSent(
            owner,
            rows.filter((r) => !fail.includes(r)).map((r) => ({ ref: r.ref })),
          );
        }
      })(),
    ),
  );
  assert.equal(await unsent(), 0, 'every row sent');
  assert.equal(changed, 0, 'a retry carries the number of the first attempt');
  for (let k = 0; k < 10; k++) {
    const ofKey = [...seqs.entries()].filter(([, v]) => v.key === `u${k}`).sort(([a], [b]) => Number(a) - Number(b));
    assert.deepEqual(
      ofKey.map(([, v]) => Number(v.seq)),
      Array.from({ length: 30 }, (_, i) => i + 1),
      `key u${k}: numbers in id order`,
    );
  }
});

// The number is drawn once, when the message is first built, and kept with the row: a retry and a resend
// carry the same number, and a declared producer id names the sequence.
test('a state-column message keeps its sequence number across retries and resends', async () => {
  const table = await awardTable('seq_retry');
  await env.db.query(`insert into "${env.schema}".${table} (u_id) values ('a'), ('b'), ('a'), ('a')`);
  const s = source(table, 'awards', { producerId: 'lottery' });
  const first = await s.claim('relay-1', 10, 60_000);
  const seqOf = (rows: typeof first) => Object.fromEntries(rows.map((r) => [r.ref, r.record.headers['zl-seq']]));
  assert.deepEqual(seqOf(first), { 1: '1', 2: '1', 3: '2', 4: '3' });
  assert.ok(first.every((r) => r.record.headers['zl-producer-id'] === 'lottery'));
  await s.markFailed(
    'relay-1',
    first.map((r) => ({ ref: r.ref, error: 'broker said no', action: 'retry' as const, delayMs: 0, charge: true })),
  );
  const again = await s.claim('relay-2', 10, 60_000);
  assert.deepEqual(seqOf(again), seqOf(first), 'a retry carries the number of the first attempt');
  await s.markSent(
    'relay-2',
    again.map((r) => ({ ref: r.ref })),
  );
  const resent = await s.resendRows({ ids: first.map((r) => r.messageId) }, '0', 10);
  assert.deepEqual(Object.fromEntries(resent.map((r) => [r.seqId, r.headers['zl-seq']])), seqOf(first), 'a resend carries it too');
  const view = await s.messageRow(first[3]?.messageId ?? '');
  assert.equal(view?.keySeq, 3);
  // A row added later continues its key's sequence.
  await env.db.query(`insert into "${env.schema}".${table} (u_id) values ('a')`);
  const next = await s.claim('relay-2', 10, 60_000);
  assert.deepEqual(seqOf(next), { 5: '4' });
});

// O4: a divert rule sends a source's messages elsewhere, as it does the outbox's. The rule is applied when
// the message is built, so the relay, trace and reconcile all name the target.
test('a divert rule sends a state-column message to the target topic, and trace and reconcile say so', async () => {
  const table = await awardTable('diverted');
  await env.db.query(
    `insert into "${env.schema}".topic_divert (topic, msg_type, target_topic, created_by) values ('awards', 'award.big', 'awards-slow', 'test')`,
  );
  await env.db.query(`insert into "${env.schema}".${table} (u_id) values ('a'), ('b')`);
  const s = source(table, 'awards', { type: (r) => (r.id === 1 ? 'award.big' : 'award.small') });
  const claimed = await s.claim('relay-1', 10, 60_000);
  assert.deepEqual(
    claimed.map((r) => [r.ref, r.record.topic]),
    [
      ['1', 'awards-slow'],
      ['2', 'awards'],
    ],
  );
  // The rule goes away; a retry still goes where the message was first sent.
  await env.db.query(`delete from "${env.schema}".topic_divert`);
  await s.markFailed(
    'relay-1',
    claimed.map((r) => ({ ref: r.ref, error: 'no', action: 'retry' as const, delayMs: 0, charge: true })),
  );
  const again = await s.claim('relay-1', 10, 60_000);
  assert.deepEqual(
    again.map((r) => r.record.topic),
    ['awards-slow', 'awards'],
  );
  assert.equal((await s.messageRow(claimed[0]?.messageId ?? ''))?.topic, 'awards-slow');
  const window = { from: new Date(Date.now() - 3_600_000), to: new Date(Date.now() + 60_000) };
  const slow = await s.outboxWindow(window, ['awards-slow'], undefined, 100);
  assert.deepEqual(
    slow.map((r) => r.messageId),
    [claimed[0]?.messageId],
  );
});
