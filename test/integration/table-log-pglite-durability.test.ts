import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { migrate } from '../../src/adapters/postgres/migrations.ts';
import { pgliteDatabase } from '../../src/adapters/postgres/pglite-database.ts';
import { TableLogAdmin } from '../../src/adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../../src/adapters/table-log/table-log-publisher.ts';
import { TableLogSubscriber } from '../../src/adapters/table-log/table-log-subscriber.ts';
import type { IncomingRecord } from '../../src/core/envelope.ts';
import { FAST_GROUP } from '../helpers/table-log.ts';
import { waitFor } from '../helpers/wait-for.ts';

const SLOW_POLLING = { heartbeatIntervalMs: 10_000, sessionTimeoutMs: 30_000, pollIntervalMs: 60_000 };

test('a PGlite closed and reopened on the same folder keeps the records and committed offsets', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zl-pglite-durable-'));
  const schema = 'zeroloss';
  try {
    {
      const pglite = new PGlite(dir);
      const db = pgliteDatabase(pglite, { closeOnClose: true });
      await migrate(db, schema);
      await new TableLogAdmin(db).createTopic('durable', 1);
      const records: IncomingRecord[] = [];
      const sub = await new TableLogSubscriber(db, SLOW_POLLING).subscribe({
        groupId: 'g',
        topics: ['durable'],
        onRecords: (b) => records.push(...b.records),
      });
      const outcomes = await new TableLogPublisher(db).publish(
        Array.from({ length: 5 }, (_, i) => ({ topic: 'durable', key: 'k', value: Buffer.from([i, 0xff]), headers: { n: String(i) } })),
      );
      assert.ok(outcomes.every((o) => o.ok));
      // Polling and rebalance ticks are seconds away: only the publish notification can deliver this fast.
      await waitFor(() => records.length === 5, { what: 'five records woken by NOTIFY', timeoutMs: 2_500 });
      await sub.commit([{ topic: 'durable', partition: 0, offset: 3n }]);
      await sub.close();
      await db.close();
    }
    {
      const pglite = new PGlite(dir);
      const db = pgliteDatabase(pglite, { closeOnClose: true });
      try {
        assert.deepEqual((await migrate(db, schema)).applied, [], 'the reopened folder is already migrated');
        const admin = new TableLogAdmin(db);
        assert.deepEqual(await admin.endOffsets('durable'), [{ partition: 0, low: 0n, high: 5n }]);
        assert.deepEqual(
          (await admin.committedOffsets('g')).map((c) => [c.partition, c.offset]),
          [[0, 3n]],
        );
        const records: IncomingRecord[] = [];
        const sub = await new TableLogSubscriber(db, FAST_GROUP).subscribe({
          groupId: 'g',
          topics: ['durable'],
          onRecords: (b) => records.push(...b.records),
        });
        await waitFor(() => records.length === 2, { what: 'the two uncommitted records' });
        await sub.close();
        assert.deepEqual(
          records.map((r) => [r.offset, [...r.value], r.headers.n]),
          [
            [3n, [3, 0xff], '3'],
            [4n, [4, 0xff], '4'],
          ],
        );
        const [next] = await new TableLogPublisher(db).publish([{ topic: 'durable', key: 'k', value: Buffer.from('6'), headers: {} }]);
        assert.ok(next?.ok && next.offset === 5n, 'the offset counter survived the restart');
      } finally {
        await db.close();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
