import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, test } from 'node:test';
import { down, up } from '../../infra/kafka/kafka.ts';

// Normally scripts/test.ts has started (or reused) the single node; when this file is run on its own, start it
// here and stop it again afterwards.
let startedHere = false;
before(async () => {
  startedHere = (await up({ mode: 'single' })).startedHere;
});
after(async () => {
  if (startedHere) await down({ mode: 'single' });
});

test('the single broker accepts TCP connections on 127.0.0.1:9092', async () => {
  const [host = '127.0.0.1', port = '9092'] = (process.env.ZL_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',')[0]?.split(':') ?? [];
  assert.equal(`${host}:${port}`, '127.0.0.1:9092');
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect({ host, port: Number(port) }, () => {
      socket.end();
      resolve();
    });
    socket.setTimeout(2000, () => socket.destroy(new Error('connect timed out')));
    socket.once('error', reject);
  });
});

test('up() again reuses the running node quickly', async () => {
  const t0 = performance.now();
  const res = await up({ mode: 'single' });
  const ms = performance.now() - t0;
  assert.equal(res.startedHere, false);
  assert.deepEqual(res.brokers, ['127.0.0.1:9092']);
  assert.ok(ms < 2000, `second up() took ${ms.toFixed(0)} ms`);
});
