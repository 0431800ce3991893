import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Consumer } from '../../../src/consumer/consumer.ts';
import { ZerolossError } from '../../../src/core/errors.ts';
import type { DeadLetterWriter } from '../../../src/ports/dead-letter-store.ts';
import type { InboxStore, StartLog } from '../../../src/ports/inbox-store.ts';
import type { Database } from '../../../src/ports/sql-executor.ts';
import type { SubscribeOptions, Subscriber } from '../../../src/ports/transport.ts';

test("a subscription's background trouble (refused credentials after start, say) reaches the consumer's 'error' event", async () => {
  let options: SubscribeOptions | undefined;
  const subscriber: Subscriber = {
    async subscribe(given) {
      options = given;
      return { commit: async () => {}, pause() {}, resume() {}, close: async () => {} };
    },
  };
  const consumer = new Consumer({
    subscriber,
    db: {} as Database,
    inbox: { forget: async () => {} } as unknown as InboxStore & StartLog,
    deadLetters: {} as DeadLetterWriter,
    config: { groupId: 'g', topics: ['t'], commitIntervalMs: 60_000, lagIntervalMs: 0, inbox: { cleanupIntervalMs: 0 } },
  });
  consumer.handle('x', async () => {});
  const seen: Error[] = [];
  consumer.on('error', (error) => seen.push(error));
  await consumer.start();
  assert.equal(typeof options?.onError, 'function', 'the consumer asks its subscription for background errors');
  const refused = new ZerolossError('ZL_KAFKA_AUTH', 'SASL authentication failed', { retryable: false });
  options?.onError?.(refused);
  assert.deepEqual(
    seen.map((e) => (e as ZerolossError).code),
    ['ZL_KAFKA_AUTH'],
  );
  await consumer.stop();
});
