import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Consumer, kGetApi } from '@platformatic/kafka';
import { KafkaSubscriber } from '../../src/adapters/kafka/kafka-subscriber.ts';
import { createTopic, KAFKA_BROKERS, uniqueTopic } from '../helpers/kafka.ts';
import { waitFor } from '../helpers/wait-for.ts';

/**
 * After a rebalance the client rejoins its group; when that fails (the coordinator moving or away longer
 * than the client's own retries, refused credentials during a rotation) it gives up and says so. The
 * subscription tried once more, a second later, and if that failed too it stayed out of the group for
 * good: no heartbeat, no assignment, nothing read, readiness still saying subscribed.
 */
test('a subscription whose rejoins keep failing for a while rejoins once they can succeed, and reads again', async () => {
  const topic = uniqueTopic('zl-rejoin');
  await createTopic(topic, 2);
  // JoinGroup of the member under test fails while `failing` is set (the library's API lookup, wrapped).
  let failing = false;
  let refused = 0;
  const proto = Consumer.prototype as unknown as Record<
    symbol,
    (this: { clientId: string }, name: string, cb: (e: Error | null, api?: unknown) => void) => void
  >;
  const original = proto[kGetApi] as (typeof proto)[symbol];
  proto[kGetApi] = function (this: { clientId: string }, name, cb) {
    if (failing && name === 'JoinGroup' && this.clientId === 'zl-rejoin-a') {
      refused++;
      cb(new Error('coordinator unavailable (test)'));
      return;
    }
    original.call(this, name, cb);
  };
  const settings = { brokers: KAFKA_BROKERS, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 300, rebalanceTimeoutMs: 6_000 };
  const assignedA: number[][] = [];
  const a = await new KafkaSubscriber({ ...settings, clientId: 'zl-rejoin-a' }).subscribe({
    groupId: `${topic}-g`,
    topics: [topic],
    onRecords: () => {},
    onAssign: (partitions) => assignedA.push(partitions.map((p) => p.partition).sort()),
    onError: () => {},
  });
  let b: Awaited<ReturnType<KafkaSubscriber['subscribe']>> | undefined;
  try {
    await waitFor(() => assignedA.at(-1)?.length === 2, { what: 'A assigned both partitions', timeoutMs: 30_000 });
    failing = true;
    // B joins: A is asked to rejoin, and cannot.
    b = await new KafkaSubscriber({ ...settings, clientId: 'zl-rejoin-b' }).subscribe({
      groupId: `${topic}-g`,
      topics: [topic],
      onRecords: () => {},
    });
    // Fourteen refused JoinGroups: the client's own retries and the subscription's. Before, it stopped
    // trying after fewer (the library's retries, then one more try of its own), and never came back.
    await waitFor(() => refused >= 14, {
      what: "A's rejoins refused, the library's retries and the subscription's own",
      timeoutMs: 60_000,
    });
    failing = false;
    const seen = assignedA.length;
    await b.close();
    b = undefined;
    await waitFor(() => assignedA.length > seen && assignedA.at(-1)?.length === 2, {
      what: 'A back in the group with both partitions',
      timeoutMs: 60_000,
    });
    assert.deepEqual(assignedA.at(-1), [0, 1]);
  } finally {
    failing = false;
    proto[kGetApi] = original;
    await b?.close();
    await a.close();
  }
});
