/**
 * Acceptance 5 of issue 16 with real process deaths: `--kills` (100) relay processes in a row, each killed
 * by SIGKILL right after the broker acknowledged its batch and before it recorded it
 * (faults/relay-broker-check-child.ts), then a healthy relay drains the rest. Every second copy of a
 * message on the topic is a resend of a message the broker had acknowledged. Prints one JSON line; exits
 * non-zero when, with the check, a message was resent, lost or put out of its key's order.
 *
 *   npx node faults/relay-broker-check-kill.ts [--kills 100] [--batch 5] [--without-check]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { KafkaInspector } from '../src/adapters/kafka/kafka-inspector.ts';
import { KafkaPublisher } from '../src/adapters/kafka/kafka-publisher.ts';
import { PostgresOutboxStore } from '../src/adapters/postgres/postgres-outbox-store.ts';
import { Relay } from '../src/outbox/relay.ts';
import { KAFKA_BROKERS, createTopic, uniqueTopic } from '../test/helpers/kafka.ts';
import { PG_URL, freshSchema, inTransaction } from '../test/helpers/pg.ts';
import { brokerCopies } from '../test/helpers/relay-crash-after-ack.ts';
import { testOutbox } from '../test/helpers/test-outbox.ts';

const { values } = parseArgs({
  options: {
    kills: { type: 'string', default: '100' },
    batch: { type: 'string', default: '5' },
    'without-check': { type: 'boolean', default: false },
  },
});
const kills = Number(values.kills);
const batchSize = Number(values.batch);
const withCheck = !values['without-check'];
const CHILD = fileURLToPath(new URL('./relay-broker-check-child.ts', import.meta.url));

const env = await freshSchema('zlbkill');
const topic = uniqueTopic('zl-bkill');
await createTopic(topic, 3);
const inspector = new KafkaInspector({ brokers: KAFKA_BROKERS });
const publisher = new KafkaPublisher({ brokers: KAFKA_BROKERS });
let code = 0;
try {
  const outbox = testOutbox({ schema: env.schema });
  const total = kills * batchSize + 3;
  const ids: string[] = [];
  await inTransaction(env.pool, async (tx) => {
    for (let j = 0; j < total; j++) ids.push((await outbox.enqueue(tx, { topic, key: `k${j % 7}`, type: 't', payload: { j } })).id);
  });
  const started = performance.now();
  let killed = 0;
  for (let i = 0; i < kills; i++) {
    const child = spawn(process.execPath, [CHILD], {
      env: {
        ...process.env,
        ZL_PG_URL: PG_URL,
        ZL_SCHEMA: env.schema,
        ZL_KAFKA_BROKERS: KAFKA_BROKERS.join(','),
        ZL_LEASE_MS: '50',
        ZL_BATCH: String(batchSize),
        ZL_NO_CHECK: withCheck ? '0' : '1',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [, signal] = await once(child, 'exit');
    if (signal !== 'SIGKILL') break;
    killed++;
  }
  const healthy = new Relay({
    sources: new PostgresOutboxStore(env.db, { schema: env.schema }),
    publisher,
    inspector: withCheck ? inspector : undefined,
    config: { brokerCheckSlackMs: 1_000 },
  });
  // The last child's lease (50 ms) is over long before this claim.
  await healthy.drain();
  const { records, copies, seqs } = await brokerCopies(inspector, topic);
  const { rows } = await env.pool.query(`select count(*) filter (where state = 1)::int as sent from "${env.schema}".outbox`);
  const summary = {
    withCheck,
    kills: killed,
    total,
    onTopic: records,
    resendsOfAcked: records - copies.size,
    lost: ids.filter((id) => !copies.has(id)).length,
    outOfOrder: [...seqs.values()].filter((s) => s.some((v, i) => i > 0 && v <= (s[i - 1] as number))).length,
    sentRows: rows[0].sent,
    seconds: Math.round((performance.now() - started) / 100) / 10,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  if (withCheck && (summary.resendsOfAcked > 0 || summary.lost > 0 || summary.outOfOrder > 0 || killed !== kills)) code = 1;
} finally {
  await publisher.close();
  await inspector.close();
  await env.cleanup();
}
process.exit(code);
