import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Admin } from '@platformatic/kafka';
import { COPY_HEADROOM_BYTES, createAdmin, doctor } from '../../../src/adapters/kafka/kafka-admin.ts';
import { createTopic, KAFKA_BROKERS, uniqueTopic } from '../../helpers/kafka.ts';

/** Issue 11, finding 6: `zeroloss doctor` flags a `.dlq` / `.retry.<n>` topic with no room above its source. */
let admin: Admin;
before(() => {
  admin = createAdmin(KAFKA_BROKERS);
});
after(async () => {
  await admin?.close();
});

test('doctor warns about a .dlq at the default size and accepts a retry topic with room above its source', async () => {
  const topic = uniqueTopic('zl-room');
  await createTopic(topic, 1);
  await createTopic(`${topic}.dlq`, 1);
  await createTopic(`${topic}.retry.1`, 1, { 'max.message.bytes': String(1_048_588 + COPY_HEADROOM_BYTES) });
  await createTopic(`${topic}.retry.2`, 1, { 'max.message.bytes': '2048' });
  const report = await doctor(admin, { topics: [topic] });
  const room = report.findings.filter((f) => f.setting === 'max.message.bytes');
  assert.deepEqual(room.map((f) => [f.subject, f.severity, f.actual]).sort(), [
    [`topic:${topic}.dlq`, 'warning', '1048588'],
    [`topic:${topic}.retry.2`, 'warning', '2048'],
  ]);
  assert.match(room[0]?.expected ?? '', new RegExp(`>= ${1_048_588 + COPY_HEADROOM_BYTES}`));
  assert.match(room.find((f) => f.subject.endsWith('.dlq'))?.message ?? '', /dead_letter table only/);
});
