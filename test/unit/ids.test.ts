import assert from 'node:assert/strict';
import { test } from 'node:test';
import { uuidv7, uuidv7Ids } from '../../src/core/ids.ts';
import { Snowflake } from '../../src/core/snowflake.ts';
import { createOutbox } from '../../src/outbox/outbox.ts';
import type { OutboxRow, OutboxWriter } from '../../src/ports/outbox-store.ts';
import type { SqlExecutor } from '../../src/ports/sql-executor.ts';

const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const T0 = Date.UTC(2026, 0, 1);

function fakeClock(start: number) {
  const clock = { t: start, now: () => clock.t };
  return clock;
}

function timestampOf(id: string): number {
  return Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);
}

function assertIncreasing(ids: string[]): void {
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `id ${i} ${ids[i]} not after ${ids[i - 1]}`);
}

test('uuidv7 ids are RFC 9562 version 7, carry the clock reading and sort by it', () => {
  const clock = fakeClock(T0);
  const next = uuidv7Ids({ clock });
  const first = next();
  assert.match(first, UUIDV7);
  assert.equal(timestampOf(first), T0);
  clock.t += 5;
  const later = next();
  assert.equal(timestampOf(later), T0 + 5);
  assert.ok(later > first);
  assert.match(uuidv7(), UUIDV7);
});

test('uuidv7: 10,000 ids in one millisecond are unique and strictly increasing, moving on a millisecond when the counter runs out', () => {
  const clock = fakeClock(T0);
  const next = uuidv7Ids({ clock });
  const ids = Array.from({ length: 10_000 }, () => next());
  assertIncreasing(ids);
  assert.equal(new Set(ids).size, ids.length);
  assert.ok(timestampOf(ids.at(-1)!) > T0, 'the counter ran out and the ids moved on to a later millisecond');
  assert.ok(ids.every((id) => UUIDV7.test(id)));
});

test('uuidv7: a clock that steps backwards (an hour, then a millisecond) never breaks uniqueness or order', () => {
  const clock = fakeClock(T0);
  const next = uuidv7Ids({ clock });
  const ids: string[] = [];
  for (let i = 0; i < 100; i++) ids.push(next());
  clock.t -= 3_600_000;
  for (let i = 0; i < 100; i++) ids.push(next());
  clock.t += 3_600_000 - 1;
  for (let i = 0; i < 100; i++) ids.push(next());
  clock.t += 2;
  ids.push(next());
  assertIncreasing(ids);
  assert.equal(timestampOf(ids.at(-1)!), T0 + 1, 'once the clock is ahead again, ids follow it');
});

test('same worker id, same millisecond: two Snowflake generators mint the same ids; two uuidv7 generators do not', () => {
  // The worst case of the old default, forced: two processes that drew the same random worker id.
  const clock = fakeClock(T0);
  const a = new Snowflake({ workerId: 7, clock });
  const b = new Snowflake({ workerId: 7, clock });
  const snowflakes = Array.from({ length: 100 }, () => [a.next(), b.next()]);
  assert.ok(snowflakes.every(([x, y]) => x === y));

  const u = uuidv7Ids({ clock });
  const v = uuidv7Ids({ clock });
  const fromU = new Set(Array.from({ length: 50_000 }, () => u()));
  const fromV = Array.from({ length: 50_000 }, () => v());
  assert.equal(fromV.filter((id) => fromU.has(id)).length, 0);
});

function recordingWriter(): OutboxWriter & { rows: OutboxRow[] } {
  const rows: OutboxRow[] = [];
  return {
    rows,
    async insert(_tx, row) {
      rows.push(row);
      return { seq: 0 };
    },
  };
}

const noSql: SqlExecutor = {
  query: async () => {
    throw new Error('no SQL expected: the writer is a fake');
  },
};

test('the outbox mints uuidv7 ids by default, with the injected clock for ids and createdAt', async () => {
  const clock = fakeClock(T0);
  const writer = recordingWriter();
  const outbox = createOutbox({ store: { outbox: writer }, clock });
  assert.equal(outbox.config.ids, 'uuidv7');
  const envelope = await outbox.enqueue(noSql, { topic: 't', key: 'k', type: 'x', payload: 1 });
  assert.match(envelope.id, UUIDV7);
  assert.equal(timestampOf(envelope.id), T0);
  assert.equal(envelope.createdAt, new Date(T0).toISOString());
  assert.equal(writer.rows[0]?.headers['zl-created-at'], new Date(T0).toISOString());
});

test('Snowflake ids need an explicit worker id; with one, they use the injected clock', async () => {
  assert.throws(
    () => createOutbox({ store: { outbox: recordingWriter() }, ids: {} as never }),
    (error: { code?: string; message: string }) => {
      assert.equal(error.code, 'ZL_INVALID_CONFIG');
      assert.match(error.message, /workerId/);
      return true;
    },
  );
  const clock = fakeClock(T0);
  const outbox = createOutbox({ store: { outbox: recordingWriter() }, ids: { workerId: 3 }, clock });
  const envelope = await outbox.enqueue(noSql, { topic: 't', key: 'k', type: 'x', payload: 1 });
  assert.match(envelope.id, /^\d+$/);
  assert.equal(envelope.createdAt, new Date(T0).toISOString());
});

test('a producerId that Postgres cannot store is a config error, not an SQL error at the first enqueue', () => {
  assert.throws(() => createOutbox({ store: { outbox: recordingWriter() }, producerId: 'a\u0000b' }), { code: 'ZL_INVALID_CONFIG' });
  assert.throws(() => createOutbox({ store: { outbox: recordingWriter() }, producerId: 'a\ud800' }), { code: 'ZL_INVALID_CONFIG' });
});
