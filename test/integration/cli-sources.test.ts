import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createOutbox } from '../../src/index.ts';
import { postgres } from '../../src/entry/postgres.ts';
import { createLotteryTables } from '../../src/examples/lottery/lottery-tables.ts';
import { BROKERS, createTopics, readTopic, uniqueId } from '../helpers/consumer-fixtures.ts';
import { zeroloss } from '../helpers/ops-cli.ts';
import { PG_URL, uniqueName } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/**
 * Issue 16, state-column sources in the CLI: a business table that carries its own send state (the
 * lottery's user_strategy_export with mq_state) is declared in the settings file, and `zeroloss relay
 * --config-file` relays it beside the outbox, as a real child process against the real broker.
 */
describe('zeroloss relay --config-file relays declared state-column sources', () => {
  const schema = uniqueName('zlclisrc');
  const store = postgres(PG_URL, { schema });
  const dir = mkdtempSync(path.join(tmpdir(), 'zl-cli-sources-'));
  const running: ChildProcess[] = [];

  const award = (topic: string, extra: Record<string, unknown> = {}) => ({
    name: 'lottery_award',
    table: 'user_strategy_export',
    tableSchema: schema,
    idColumn: 'id',
    keyColumn: 'u_id',
    stateColumn: 'mq_state',
    createdColumn: 'create_time',
    modifiedColumn: 'modified_time',
    topic,
    ...extra,
  });
  const declarative = (topic: string) =>
    award(topic, {
      type: 'lottery.award.{award_type}',
      payload: { orderId: 'order_id', userId: 'u_id', awardId: 'award_id', awardName: 'award_name' },
    });
  const writeConfig = (name: string, settings: unknown) => {
    const file = path.join(dir, name);
    writeFileSync(file, JSON.stringify(settings));
    return file;
  };
  let order = 0;
  const insertAwards = async (users: string[]) => {
    for (const u of users) {
      order += 1;
      await store.db.query(
        `insert into "${schema}".user_strategy_export (u_id, activity_id, order_id, strategy_id, award_id, award_type, award_name, create_time)
         values ($1, 1, $2, 7, 'A003', 'coupon', '50-off coupon', now() - interval '1 hour')`,
        [u, `order-${order}`],
      );
    }
  };
  const states = async () =>
    (
      await store.db.query<{ order_id: string; mq_state: number; create_time: Date }>(
        `select order_id, mq_state, create_time from "${schema}".user_strategy_export order by id`,
      )
    ).rows;

  before(async () => {
    await store.migrate();
    await createLotteryTables(store.db, schema);
  });
  after(async () => {
    for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    await store.db.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
    await store.close();
  });

  test('a running relay sends the outbox and the award rows (declarative mapping), marks them sent, keeps the row times', async () => {
    const topic = uniqueId('zl-cli-award');
    await createTopics([topic], 1);
    const config = writeConfig('declarative.json', { kafka: { brokers: BROKERS }, sources: [declarative(topic)] });
    await insertAwards(['u-1', 'u-2', 'u-1']);
    const child = spawn(
      process.execPath,
      [MAIN, 'relay', '--pg', PG_URL, '--schema', schema, '--config-file', config, '--poll-interval-ms', '20'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    running.push(child);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    // Rows written while it runs are found too, and the outbox is still relayed beside the source.
    await waitFor(() => stderr.includes('running on schema'), { what: 'the relay running', timeoutMs: 30_000 });
    await insertAwards(['u-3']);
    const outbox = createOutbox({ store, producerId: 'cli-sources' });
    await store.transaction((tx) => outbox.enqueue(tx, { topic, key: 'outbox-key', type: 'outbox.row', payload: { n: 1 } }));

    await waitFor(async () => (await states()).every((r) => Number(r.mq_state) === 1), { what: 'every award sent', timeoutMs: 60_000 });
    const records = await readTopic(topic, 5, 60_000);
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);

    const awards = records.filter((r) => r.headers['zl-type'] === 'lottery.award.coupon');
    assert.equal(awards.length, 4, 'each award row once');
    // Order is promised per key only: u-3's row, written once the relay ran, may share a claim with the
    // first three and go out before u-1's second row (it did once on a clean clone).
    const sent = awards.map((r) => ({ key: r.key, value: JSON.parse(r.value.toString()), createdAt: r.headers['zl-created-at'] }));
    for (const key of ['u-1', 'u-2', 'u-3'])
      assert.deepEqual(
        sent.filter((s) => s.key === key).map((s) => s.value.orderId),
        [...sent.filter((s) => s.key === key).map((s) => s.value.orderId)].sort(),
        `${key}'s rows in their order`,
      );
    const rows = await states();
    const byOrder = (a: { value: { orderId: string } }, b: { value: { orderId: string } }) =>
      a.value.orderId.localeCompare(b.value.orderId);
    assert.deepEqual(
      [...sent].sort(byOrder).map((s) => s.value),
      rows.map((r, i) => ({ orderId: r.order_id, userId: ['u-1', 'u-2', 'u-1', 'u-3'][i], awardId: 'A003', awardName: '50-off coupon' })),
    );
    // The message's createdAt is the row's own creation time, not the time of the first claim.
    assert.deepEqual(
      [...sent].sort(byOrder).map((s) => s.createdAt),
      rows.map((r) => r.create_time.toISOString()),
    );
    assert.equal(records.filter((r) => r.headers['zl-type'] === 'outbox.row').length, 1, 'the outbox row went too');
  });

  test('--once --only-sources with a mapping module: the awards go, the outbox row stays unsent', async () => {
    const topic = uniqueId('zl-cli-award-mod');
    await createTopics([topic], 1);
    await store.db.query(`update "${schema}".user_strategy_export set mq_state = 1`);
    const module = path.join(dir, 'award-mapping.mjs');
    writeFileSync(
      module,
      `export function toMessage(row) {
        return { type: 'award.' + row.award_type, payload: { order: row.order_id, activity: Number(row.activity_id) } };
      }\n`,
    );
    const config = writeConfig('module.json', { sources: [award(topic, { module: './award-mapping.mjs' })] });
    await insertAwards(['m-1', 'm-2']);
    const outbox = createOutbox({ store, producerId: 'cli-sources' });
    const kept = await store.transaction((tx) => outbox.enqueue(tx, { topic, key: 'k', type: 'outbox.row', payload: {} }));

    const r = await zeroloss([
      'relay',
      '--pg',
      PG_URL,
      '--schema',
      schema,
      '--kafka',
      BROKERS.join(','),
      '--config-file',
      config,
      '--only-sources',
      '--once',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await states()).every((row) => Number(row.mq_state) === 1));
    const records = await readTopic(topic, 2, 30_000);
    assert.deepEqual(
      records.map((x) => [x.key, x.headers['zl-type'], JSON.parse(x.value.toString())]),
      [
        ['m-1', 'award.coupon', { order: `order-${order - 1}`, activity: 1 }],
        ['m-2', 'award.coupon', { order: `order-${order}`, activity: 1 }],
      ],
    );
    const { rows } = await store.db.query<{ state: number }>(`select state from "${schema}".outbox where message_id = $1`, [kept.id]);
    assert.equal(Number(rows[0]?.state), 0, 'the outbox is not relayed with --only-sources');
  });

  describe('a bad settings file stops the relay at start with the field named', () => {
    const relayWith = (settings: unknown, name: string, extra: string[] = []) =>
      zeroloss([
        'relay',
        '--pg',
        PG_URL,
        '--schema',
        schema,
        '--kafka',
        BROKERS.join(','),
        '--config-file',
        typeof settings === 'string' ? settings : writeConfig(name, settings),
        '--once',
        ...extra,
      ]);
    const cases: Array<[string, unknown, RegExp]> = [
      ['a misspelt key', { sources: [{ ...declarative('t'), stateColum: 'mq_state' }] }, /sources\[0\]\.stateColum: unknown key/],
      [
        'a missing column name',
        { sources: [{ ...declarative('t'), modifiedColumn: undefined }] },
        /sources\[0\]\.modifiedColumn: Invalid input/,
      ],
      ['a table name that is no SQL name', { sources: [{ ...declarative('t'), table: 'Award-Table' }] }, /sources\[0\]\.table: must be/],
      [
        'both a payload mapping and a module',
        { sources: [{ ...declarative('t'), module: './x.mjs' }] },
        /sources\[0\]\.payload: give exactly one/,
      ],
      ['a declarative payload without a type', { sources: [{ ...declarative('t'), type: undefined }] }, /sources\[0\]\.type:/],
      ['two sources of one name', { sources: [declarative('t'), declarative('u')] }, /sources\[1\]\.name: duplicate source name/],
      ['an unknown top-level section', { source: [] }, /source: unknown key/],
      ['a bad kafka section', { kafka: { brokers: 9092 } }, /kafka\.brokers:/],
    ];
    for (const [what, settings, expected] of cases) {
      test(what, async () => {
        const r = await relayWith(settings, `${what.replaceAll(' ', '-')}.json`);
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /ZL_INVALID_CONFIG/);
        assert.match(r.stderr, expected);
      });
    }

    test('a mapping module that exports no function', async () => {
      writeFileSync(path.join(dir, 'empty.mjs'), 'export const x = 1;\n');
      const r = await relayWith({ sources: [award('t', { module: './empty.mjs' })] }, 'empty-module.json');
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /ZL_INVALID_CONFIG: sources\[0\]\.module: .*exports no toMessage/);
    });

    test('a payload column the table lacks fails before any row is touched', async () => {
      const r = await relayWith({ sources: [{ ...declarative('t'), payload: ['order_id', 'no_such_column'] }] }, 'missing-column.json');
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /ZL_UNKNOWN_TABLE: state-column source lottery_award: column no_such_column not in/);
    });

    test('--only-sources without sources, and sources in WAL mode', async () => {
      const none = await relayWith({}, 'no-sources.json', ['--only-sources']);
      assert.equal(none.code, 2, none.stderr);
      assert.match(none.stderr, /--only-sources needs a "sources" section/);
      const file = writeConfig('wal.json', { sources: [declarative('t')] });
      const wal = await zeroloss([
        'relay',
        '--pg',
        PG_URL,
        '--schema',
        schema,
        '--kafka',
        BROKERS.join(','),
        '--config-file',
        file,
        '--mode',
        'wal',
      ]);
      assert.equal(wal.code, 2, wal.stderr);
      assert.match(wal.stderr, /are relayed by --mode poll/);
    });
  });
});
