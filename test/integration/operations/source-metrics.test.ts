import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Registry } from 'prom-client';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { StateColumnSource } from '../../../src/adapters/postgres/state-column-source.ts';
import { OpsCollector } from '../../../src/operations/ops-collector.ts';
import { createOpsMetrics } from '../../../src/operations/ops-metrics.ts';
import { status } from '../../../src/operations/status.ts';
import { freshSchema } from '../../helpers/pg.ts';

let env: Awaited<ReturnType<typeof freshSchema>>;
before(async () => {
  env = await freshSchema('zlsm');
});
after(async () => {
  await env.cleanup();
});

// O1 for a state-column source: the schema-wide gauges serve publishes cover the source's rows beside the
// outbox's, labelled with the source's name, and status counts its stuck rows.
test('the collector and status report a state-column source’s unsent, parked and stuck rows', async () => {
  const s = `"${env.schema}"`;
  await env.db.query(
    `create table ${s}.award (id bigserial primary key, u_id text not null, mq_state smallint not null default 0,
       created_time timestamptz not null default now(), modified_time timestamptz not null default now())`,
  );
  // Two rows an hour old (stuck), one fresh, and one that gets parked.
  await env.db.query(
    `insert into ${s}.award (u_id, created_time, modified_time) values
       ('a', now() - interval '1 hour', now() - interval '1 hour'), ('b', now() - interval '1 hour', now() - interval '1 hour'),
       ('c', now(), now()), ('d', now(), now())`,
  );
  const source = new StateColumnSource<{ id: number; u_id: string }>(env.db, {
    name: 'lottery.awards',
    table: 'award',
    tableSchema: env.schema,
    schema: env.schema,
    idColumn: 'id',
    stateColumn: 'mq_state',
    modifiedColumn: 'modified_time',
    createdColumn: 'created_time',
    keyColumn: 'u_id',
    toMessage: (r) => ({ topic: 'awards', key: r.u_id, type: 'award', payload: { id: r.id } }),
  });
  const claimed = await source.claim('relay-1', 10, 60_000);
  await source.markFailed('relay-1', [
    ...claimed
      .filter((r) => r.ref === '4')
      .map((r) => ({ ref: r.ref, error: 'rejected', action: 'park' as const, delayMs: 0, charge: true })),
    ...claimed.filter((r) => r.ref !== '4').map((r) => ({ ref: r.ref, error: 'x', action: 'release' as const, delayMs: 0, charge: false })),
  ]);

  const store = new PostgresOperationsStore(env.db, { schema: env.schema });
  const st = await status({ store, sources: [source] }, { stuckAfterMs: 60_000 });
  assert.deepEqual(
    st.sources.map((x) => ({ name: x.name, pending: x.pending, parked: x.parked, stuckRows: x.stuckRows, stuck: x.stuck })),
    [{ name: 'lottery.awards', pending: 3, parked: 1, stuckRows: 2, stuck: true }],
  );

  const metrics = createOpsMetrics(new Registry());
  const collector = new OpsCollector({ store, metrics, sources: [source] }, { commitDelayMs: 0, groups: [], stuckAfterMs: 60_000 });
  await collector.collect();
  const text = await metrics.registry.metrics();
  // The outbox's own series keep their labels; a source's carry its name.
  assert.match(text, /zeroloss_outbox_rows\{state="pending"\} 0/);
  assert.match(text, /zeroloss_outbox_rows\{state="pending",source="lottery.awards"\} 3/);
  assert.match(text, /zeroloss_outbox_rows\{state="parked",source="lottery.awards"\} 1/);
  assert.match(text, /zeroloss_outbox_rows\{state="stuck",source="lottery.awards"\} 2/);
  const oldest = /zeroloss_outbox_oldest_unsent_seconds\{source="lottery.awards"\} ([0-9.e+]+)/.exec(text);
  assert.ok(oldest && Number(oldest[1]) >= 3_000, `oldest unsent age of the source: ${oldest?.[1]}`);
});
