import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { postgresWalShards } from '../../../src/adapters/postgres/wal/postgres-wal-shards.ts';
import { tableLog } from '../../../src/adapters/table-log/table-log-transport.ts';
import { ZerolossError } from '../../../src/core/errors.ts';
import { walShardOf } from '../../../src/core/wal-shard.ts';
import { ShardedWalRelay } from '../../../src/outbox/wal-sharded-relay.ts';
import type { WalShardSet } from '../../../src/ports/wal-shards.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { startWalPostgres, walSchema } from './wal-postgres.ts';

/**
 * A relay that is alive (its heartbeats reach the database) but cannot open a replication connection: no
 * `replication` line in pg_hba.conf for its host, a role without REPLICATION, a URL through PgBouncer,
 * max_wal_senders used up. It owned its fair share of the shards and never read them; another relay took
 * each as an orphan after orphanGraceMs, then handed it back to its live owner, again and again: the
 * shard was read a moment in every few seconds, and a transaction longer than a moment never finished.
 */
let instance: PostgresInstance;
before(async () => {
  instance = await startWalPostgres('unfit');
});
after(async () => {
  await instance?.stop('fast');
});

/** The shard set as a relay without replication access sees it: every stream refuses to open. */
function withoutReplication(set: WalShardSet): WalShardSet {
  return new Proxy(set, {
    get(target, prop, receiver) {
      if (prop === 'open') {
        return (...args: Parameters<WalShardSet['open']>) => {
          const opened = target.open(...args);
          return {
            ...opened,
            stream: {
              slot: opened.stream.slot,
              open: async () => {
                throw new ZerolossError('ZL_STORE_UNAVAILABLE', 'no pg_hba.conf entry for replication connection (test)', {
                  retryable: true,
                });
              },
            },
          };
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

test('a relay that cannot read its shards leaves the group, and the others read every shard for good', async () => {
  const s = await walSchema(instance.url, { createSlot: false });
  const set = postgresWalShards(s.store, { url: s.url });
  await set.createShards(2, 'test');
  const transport = tableLog(s.store);
  await transport.ensureTopic('orders', 2);
  // The relay that cannot read stays out of the group for memberTimeoutMs before it tries again (and is
  // handed its share once more): long enough here for the check below to see the group settled without it.
  const sharding = { checkIntervalMs: 100, memberTimeoutMs: 6_000, orphanGraceMs: 300 };
  const unfit = new ShardedWalRelay({
    shards: withoutReplication(set),
    publisher: transport.publisher,
    sharding,
    relay: { pollIntervalMs: 100 },
  });
  const fit = new ShardedWalRelay({ shards: set, publisher: transport.publisher, sharding, relay: { pollIntervalMs: 100 } });
  const fitHolding: string[] = [];
  const fitHoldingAt: number[] = [];
  fit.on('shards', (e) => {
    fitHolding.push(e.holding.join(','));
    fitHoldingAt.push(Date.now());
  });
  const unfitErrors: Error[] = [];
  let leftAt = 0;
  unfit.on('error', (e) => {
    unfitErrors.push(e);
    if (/leaving the group/.test(e.message)) leftAt ||= Date.now();
  });
  const keys = [0, 1].map((shard) => Array.from({ length: 200 }, (_, i) => `k${i}`).find((k) => walShardOf(k, 2) === shard) as string);
  const outbox = testOutbox({ schema: s.schema });
  try {
    // The unfit relay first: it is a member, and its fair share is assigned to it.
    await unfit.start();
    await fit.start();
    await waitFor(() => unfitErrors.some((e) => /leaving the group/.test(e.message)), {
      what: 'the relay that cannot read to leave the group',
      timeoutMs: 30_000,
    });
    // The error is said as it leaves; a look the other relay began before the leaving still saw it as a
    // member and may hand it a shard back once. Wait for its membership row to go, then for three of the
    // other relay's own heartbeats (each starts one look): every look after that sees it gone.
    const member = async (id: string) =>
      (await s.pool.query(`select seen_at from "${s.schema}".wal_member where member = $1`, [id])).rows[0]?.seen_at?.getTime() as
        | number
        | undefined;
    await waitFor(async () => (await member(unfit.instanceId)) === undefined, {
      what: 'the relay that cannot read to leave',
      timeoutMs: 10_000,
    });
    const heartbeats = async (n: number) => {
      let last = await member(fit.instanceId);
      let seen = 0;
      await waitFor(
        async () => {
          const now = await member(fit.instanceId);
          if (now !== last) seen++;
          last = now;
          return seen >= n;
        },
        { what: `${n} heartbeats of the reading relay`, timeoutMs: 10_000, intervalMs: 10 },
      );
    };
    await heartbeats(3);
    await waitFor(() => fit.holding.length === 2 && fitHolding.at(-1) === '0,1', {
      what: 'the other relay reading both shards',
      timeoutMs: 10_000,
    });
    const since = fitHolding.length;
    for (let i = 0; i < 20; i++)
      await s.store.transaction((tx) => outbox.enqueue(tx, { topic: 'orders', key: keys[i % 2] as string, type: 't', payload: { i } }));
    await waitFor(
      async () => (await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox where state = 1`)).rows[0].n === 20,
      { what: 'every row sent', timeoutMs: 15_000 },
    );
    // Ten more looks (a second at checkIntervalMs): with the relay that cannot read still a member, the
    // other took its shard as an orphan after orphanGraceMs and handed it back every few looks.
    await heartbeats(10);
    const handedBack = fitHolding.slice(since).filter((_, i) => (fitHoldingAt[since + i] as number) < leftAt + sharding.memberTimeoutMs);
    assert.deepEqual(handedBack, [], 'the reading relay kept both shards: no hand-back to the relay that cannot read them');
  } finally {
    await fit.stop();
    await unfit.stop();
    await set.dropShards().catch(() => {});
    await transport.close();
    await s.cleanup();
  }
});
