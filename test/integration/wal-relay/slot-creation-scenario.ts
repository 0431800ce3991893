import { createRelay } from '../../../src/outbox/create-relay.ts';
import type { Transport } from '../../../src/ports/backends.ts';
import { createTopic, readTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { checkTopic } from '../../helpers/producer-workload.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { outboxIds, type WalSchema } from './wal-postgres.ts';

/**
 * What the slot-creation tests share: a topic, rows of one key enqueued one transaction each, and a WAL
 * relay (not yet started) that retries its slot quickly and logs what it said of the slot.
 */
export async function slotCreationScenario(s: WalSchema, transport: Transport, name: string) {
  const topic = uniqueTopic(name);
  await createTopic(topic, 2);
  const outbox = testOutbox({ schema: s.schema });
  const enqueue = (i: number) => s.store.transaction((tx) => outbox.enqueue(tx, { topic, key: 'a', type: 't', payload: { i } }));
  const sent = async () => (await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox where state = 1`)).rows[0].n as number;
  const relay = createRelay({
    mode: 'wal',
    wal: s.wal,
    transport,
    backoff: { baseMs: 100, maxMs: 500, jitter: 0 },
    pollIntervalMs: 100,
    standbyRetryMs: 200,
  });
  const states: string[] = [];
  /** Why it stood by, each time it said so. */
  const reasons: string[] = [];
  relay.on('slot', (e) => {
    states.push(e.state);
    if (e.reason) reasons.push(e.reason);
  });
  return {
    topic,
    enqueue,
    sent,
    relay,
    states,
    reasons,
    /** Waits until all `rows` are sent, then reads the topic back: lost rows and per-key order violations, and the order seen. */
    async onTopic(rows: number) {
      await waitFor(async () => (await sent()) === rows, { what: 'every row sent', timeoutMs: 30_000 });
      const ids = await outboxIds(s.pool, s.schema);
      const records = await readTopic(topic, { done: (r) => new Set(r.map((x) => x.headers['zl-id'])).size >= rows, timeoutMs: 20_000 });
      const check = checkTopic(ids, new Set(), records);
      return { lost: check.lost.length, orderViolations: check.orderViolations, order: records.map((r) => r.headers['zl-seq']).join(' ') };
    },
  };
}
