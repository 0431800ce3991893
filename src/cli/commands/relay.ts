import { setFlagsFromString } from 'node:v8';
import { kafka } from '../../adapters/kafka/kafka-transport.ts';
import { postgres } from '../../adapters/postgres/postgres.ts';
import { postgresWal } from '../../adapters/postgres/wal/postgres-wal.ts';
import { postgresWalShards } from '../../adapters/postgres/wal/postgres-wal-shards.ts';
import type { ShardedWalRelay } from '../../outbox/wal-sharded-relay.ts';
import type { WalRelay } from '../../outbox/wal-relay.ts';
import type { Relay } from '../../outbox/relay.ts';
import { createRelay } from '../../outbox/create-relay.ts';
import { isClientRefused, ZerolossError } from '../../core/errors.ts';
import { connectionOptions, intOption, parse, pgUrl } from '../args.ts';
import { cliLogger, logHelp } from '../cli-logger.ts';
import { kafkaSecurityHelp, kafkaSettings } from '../kafka-connection-options.ts';
import { configuredSources } from '../config-sources.ts';
import { readSettingsFile } from '../settings-file.ts';
import { relayReadiness } from '../../outbox/relay-readiness.ts';
import { startHealthServer } from '../../adapters/http/health-server.ts';
import { httpEndpoint, httpHelp, httpOptions } from '../http-options.ts';

export const relayHelp = `Usage: zeroloss relay --pg <url> --kafka <brokers> [options]

Sends committed outbox rows to Kafka and records each broker answer. Finds new, failed-and-due and
zombie (lease expired) rows with a cheap index probe every --poll-interval-ms, and also wakes at once on
pg_notify from producers created with notify: true. Runs until SIGTERM/SIGINT, then finishes the sends
in flight. Several relays may run on one outbox: rows are leased, never sent by two at once. Rows for a
topic the broker lacks or refuses wait with backoff (at most 30 s apart), never charged or parked, and go
once the topic exists; \`zeroloss status\` lists such topics.

  --pg <url>               Postgres with the outbox (or ZEROLOSS_PG_URL)
  --schema <name>          zeroloss schema (default: zeroloss)
  --kafka <brokers>        comma-separated host:port (or ZEROLOSS_KAFKA_BROKERS)
${kafkaSecurityHelp}
  --only-sources           relay only the "sources" of --config-file, not the outbox table (when another
                           relay serves the outbox). Without it both are relayed: the outbox and every
                           business table declared there with its own send-state column (docs/operations.md)
  --batch-size <n>         rows per claim (default 500)
  --concurrency <n>        claim rounds in flight (default 2)
  --lease-ms <n>           claim lease; must exceed --delivery-timeout-ms (default 60000)
  --delivery-timeout-ms <n> bound on one send, retries included (default 30000)
  --max-attempts <n>       attempts before a row is parked (default 10)
  --backoff-base-ms <n>    first retry delay, doubled each attempt (default 1000)
  --backoff-max-ms <n>     cap on the retry delay (default 300000)
  --poll-interval-ms <n>   how often an idle relay checks for claimable rows (default 20)
  --idle-interval-ms <n>   scan interval of sources without that check (default 60000)
  --compression <codec>    none|gzip|snappy|lz4|zstd (default none)
${httpHelp(27)}
                           /readyz is 503 while the database does not answer \`select 1\` within 2 s, while
                           the last send found no broker, or while a claim loop has been in one turn
                           longer than --lease-ms (stuck); without --http-port nothing is served
  --once                   send everything due, then exit
                           exit status 78 when the broker refuses the credentials or certificate (ZL_KAFKA_AUTH,
                           ZL_KAFKA_TLS); 2 for a bad setting
  --verbose                log every claim round (and WAL batch): level debug
${logHelp}

WAL mode (PostgreSQL with wal_level=logical; docs/wal-relay.md): reads committed outbox inserts from a
logical replication slot in commit order, sends them in batches and confirms a batch to the slot only
after the broker took it and the outbox recorded it. Several relays may run: one reads the slot, the
others stand by and take over when it dies. Rows that fail for their own reasons go to a polling path
(the options above) that retries and parks them as usual, holding their key back meanwhile.

  --mode <poll|wal>        poll (default) or wal
  --slot <name>            replication slot (default zeroloss_<schema>); one per outbox: --create-slot
                           under another name is refused while a slot of the outbox exists
  --create-slot            create the publication and the slot if missing (never done otherwise), hand
                           rows still unsent to the polling path, then run
  --insert-only            with --create-slot: switch the outbox to the insert-only mode: new rows are
                           inserted for the stream and the relay records what it sent with one row per
                           batch instead of an update per message (docs/wal-relay.md). Every relay that
                           reads the outbox must be of this release or later. --drop-slot switches back
  --drop-slot              drop the slot and every shard's slot and publication, and exit (the server
                           stops keeping WAL for them); rows still in the stream go to the polling path
  --wal-batch-size <n>     rows per send, whole transactions or parts of a larger one (default 2000)
  --shards <n>             with --create-slot: split the outbox into n shards by key hash (PostgreSQL 15+),
                           each streamed through a slot of its own (zeroloss_<schema>_s<i>), so n relays can
                           read at once. n is stored in the database and every relay reads it from there:
                           later runs need no --shards. Relays share the shards as a group: each reads its
                           fair share, a newcomer is handed shards once their reader finished its batches
                           in flight, a dead relay's shards are taken over after 3 s unread, and a relay
                           that cannot read its shards leaves the group for a while. A key always maps to
                           one shard, so its order holds. Changing n is refused unless the outbox is
                           drained (nothing unsent or failed) and no relay runs`;

export async function relayCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...connectionOptions,
    'batch-size': { type: 'string' },
    concurrency: { type: 'string' },
    'lease-ms': { type: 'string' },
    'delivery-timeout-ms': { type: 'string' },
    'max-attempts': { type: 'string' },
    'backoff-base-ms': { type: 'string' },
    'backoff-max-ms': { type: 'string' },
    'poll-interval-ms': { type: 'string' },
    'idle-interval-ms': { type: 'string' },
    compression: { type: 'string' },
    ...httpOptions,
    once: { type: 'boolean' },
    verbose: { type: 'boolean' },
    mode: { type: 'string' },
    slot: { type: 'string' },
    'create-slot': { type: 'boolean' },
    'drop-slot': { type: 'boolean' },
    'insert-only': { type: 'boolean' },
    'wal-batch-size': { type: 'string' },
    shards: { type: 'string' },
    'only-sources': { type: 'boolean' },
  });
  if (values.help) {
    console.log(relayHelp);
    return 0;
  }
  const mode = values.mode ?? 'poll';
  if (mode !== 'poll' && mode !== 'wal') throw new ZerolossError('ZL_INVALID_CONFIG', `--mode must be poll or wal, not ${mode}`);
  if (mode === 'poll' && (values.slot || values['create-slot'] || values['drop-slot'] || values['wal-batch-size'] || values.shards)) {
    throw new ZerolossError('ZL_INVALID_CONFIG', '--slot, --create-slot, --drop-slot, --wal-batch-size and --shards need --mode wal');
  }
  if (mode === 'wal' && values.once) throw new ZerolossError('ZL_INVALID_CONFIG', '--once is for --mode poll');
  if (values['insert-only'] && !values['create-slot']) {
    throw new ZerolossError('ZL_INVALID_CONFIG', '--insert-only needs --mode wal --create-slot', { details: { field: 'insert-only' } });
  }
  // main.ts sets V8's --optimize-for-size for every long-running command, before anything allocates. The
  // polling relay waits on Postgres and loses nothing by it (a 200,000-row drain: 13 s vs 12 s), but the WAL
  // relay is bound by its own CPU: the CLI drained 1,059-1,372 msg/s with it against 1,925-2,753 without
  // (10,000 rows, 2 reps each, interleaved, load 18-25), for 210-240 MiB peak RSS instead of 147 MiB.
  // Turned off here, before the relay's first message, it no longer shapes the code V8 optimises.
  if (mode === 'wal') setFlagsFromString('--no-optimize-for-size');
  if (values['drop-slot']) return dropSlot(values);
  const declared = readSettingsFile(values['config-file']).sources;
  if (values['only-sources'] && declared.length === 0) {
    throw new ZerolossError('ZL_INVALID_CONFIG', '--only-sources needs a "sources" section in --config-file', {
      details: { field: 'only-sources' },
    });
  }
  // Refused rather than ignored: a WAL relay reads the outbox table's log only, and a source silently left
  // unrelayed would look healthy while its rows pile up.
  if (mode === 'wal' && declared.length > 0) {
    throw new ZerolossError('ZL_INVALID_CONFIG', 'the "sources" of --config-file are relayed by --mode poll; run a second relay for them', {
      details: { field: 'sources' },
    });
  }
  const connection = kafkaSettings(values);
  const log = cliLogger('relay', { verbose: values.verbose });
  // notify: true here only means "listen": producers that opt in to pg_notify wake this relay at commit.
  const store = postgres(pgUrl(values.pg), {
    schema: values.schema,
    notify: true,
    onError: (e) => log.error({ err: e, code: (e as { code?: unknown }).code }, `database: ${e.message}`),
  });
  const transport = kafka({
    ...connection,
    publisher: {
      deliveryTimeoutMs: intOption(values['delivery-timeout-ms'], 'delivery-timeout-ms', 30_000),
      compression: (values.compression ?? 'none') as 'none',
    },
  });
  const shardSet = mode === 'wal' ? postgresWalShards(store, { url: pgUrl(values.pg) }) : undefined;
  const shards = shardSet
    ? await walShards(shardSet, values, log).catch(async (error: unknown) => {
        // Closed here, or the pool's idle connections keep a refused run alive for their timeout.
        await transport.close().catch(() => {});
        await store.close().catch(() => {});
        throw error;
      })
    : 0;
  const wal = mode === 'wal' && shards === 0 ? postgresWal(store, { url: pgUrl(values.pg), slot: values.slot }) : undefined;
  if (wal && values['create-slot']) {
    const { created, handedOver, insertOnly } = await wal.createSlot(undefined, { insertOnly: values['insert-only'] });
    if (created) {
      log.info(
        { slot: wal.slot, publication: wal.publication, handedOver, insertOnly },
        `created slot ${wal.slot} and publication ${wal.publication}; ${handedOver} unsent row(s) handed to the polling path`,
      );
    } else log.info({ slot: wal.slot, insertOnly }, `slot ${wal.slot} exists already`);
    if (insertOnly) log.info({ slot: wal.slot }, 'the outbox is insert-only: sends are recorded per batch');
  }
  const settings = {
    batchSize: intOption(values['batch-size'], 'batch-size', 500),
    concurrency: intOption(values.concurrency, 'concurrency', 2),
    leaseMs: intOption(values['lease-ms'], 'lease-ms', 60_000),
    maxAttempts: intOption(values['max-attempts'], 'max-attempts', 10),
    backoff: {
      baseMs: intOption(values['backoff-base-ms'], 'backoff-base-ms', 1_000),
      maxMs: intOption(values['backoff-max-ms'], 'backoff-max-ms', 300_000),
      jitter: 0.5,
    },
    pollIntervalMs: intOption(values['poll-interval-ms'], 'poll-interval-ms', 20),
    idleIntervalMs: intOption(values['idle-interval-ms'], 'idle-interval-ms', 60_000),
  };
  const walSettings = {
    mode: 'wal' as const,
    transport,
    walBatchSize: intOption(values['wal-batch-size'], 'wal-batch-size', 2_000),
    logger: log,
    ...settings,
    pollIntervalMs: intOption(values['poll-interval-ms'], 'poll-interval-ms', 500),
  };
  const walRelay: WalRelay | ShardedWalRelay | undefined =
    shardSet && shards > 0 ? createRelay({ ...walSettings, wal: shardSet }) : wal ? createRelay({ ...walSettings, wal }) : undefined;
  // In WAL mode the polling relay is the path for failed rows; its events and probes are this one's.
  // Both relays log through `log` themselves: errors, failed and parked rows, slot changes, and every round
  // or batch at debug (--verbose).
  const sources = walRelay
    ? []
    : await configuredSources(store, values['config-file']).catch(async (error: unknown) => {
        await transport.close().catch(() => {});
        await store.close().catch(() => {});
        throw error;
      });
  const relay: Relay = walRelay
    ? walRelay.retries
    : createRelay({
        store,
        transport,
        sources: [...(values['only-sources'] ? [] : [store.relaySource]), ...sources],
        ...settings,
        logger: log,
      });
  const runner = walRelay ?? relay;
  walRelay?.on('error', (e) => {
    if (e instanceof ZerolossError && isClientRefused(e)) relay.emit('error', e);
  });
  // The broker refusing this client (a wrong password, an untrusted certificate) will not pass by itself:
  // the library keeps retrying for services that can fix it live, but this process exits so the
  // orchestrator shows a failing relay with the reason instead of a healthy-looking one that sends nothing.
  let refusedBy: ZerolossError | undefined;
  const refused = new Promise<void>((resolve) => {
    relay.on('error', (e) => {
      if (refusedBy === undefined && e instanceof ZerolossError && isClientRefused(e)) {
        refusedBy = e;
        log.error({ code: e.code }, `the broker refused this client, exiting: ${e.code}: ${e.message}`);
        resolve();
      }
    });
  });
  const close = async () => {
    await transport.close().catch(() => {});
    await store.close().catch(() => {});
  };
  if (values.once) {
    const draining = relay.drain();
    // Left behind when the broker refused us; whatever it ends with, the answer is the refusal.
    draining.catch(() => {});
    const n = await Promise.race([draining, refused.then(() => 0)]);
    await close();
    if (refusedBy) return EXIT_REFUSED;
    console.log(`relay: processed ${n} row(s)`);
    return 0;
  }
  const endpoint = httpEndpoint(values);
  await runner.start();
  const server = endpoint && (await startHealthServer({ ...endpoint, registry: relay.registry, checks: relayReadiness(relay, store.db) }));
  log.info(
    { schema: store.schema, mode, ...(server ? { http: `${server.host}:${server.port}` } : {}) },
    `relay ${relay.instanceId}: running on schema ${store.schema}${server ? `, probes and metrics on ${server.host}:${server.port}` : ''}`,
  );
  await Promise.race([
    refused,
    new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    }),
  ]);
  await runner.stop();
  await server?.close();
  await close();
  return refusedBy ? EXIT_REFUSED : 0;
}

/**
 * In WAL mode: how many shards the outbox has (0: one slot for all of it), after creating them when asked
 * (`--create-slot --shards N`, or `--create-slot` alone when shards exist: their missing slots are made
 * again). The count lives in the database; `--shards` without `--create-slot` must agree with it.
 */
async function walShards(
  set: ReturnType<typeof postgresWalShards>,
  values: { shards?: string; 'create-slot'?: boolean; 'insert-only'?: boolean; slot?: string },
  log: ReturnType<typeof cliLogger>,
): Promise<number> {
  const requested = values.shards === undefined ? undefined : intOption(values.shards, 'shards', 1);
  let existing = await set.list();
  if (values['create-slot'] && (requested !== undefined || existing.length > 0)) {
    const { created, handedOver, dropped } = await set.createShards(requested ?? (existing[0]?.shards as number), undefined, {
      insertOnly: values['insert-only'],
    });
    if (dropped.length > 0) log.info({ dropped }, `dropped the previous shards' slots: ${dropped.join(', ')}`);
    log.info(
      { created, handedOver },
      created.length > 0
        ? `created slot(s) ${created.join(', ')}; ${handedOver} unsent row(s) handed to the polling path`
        : 'every shard has its slot already',
    );
    existing = await set.list();
  } else if (requested !== undefined && existing[0]?.shards !== requested) {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      existing.length === 0
        ? '--shards creates shards only with --create-slot'
        : `the outbox has ${existing[0]?.shards} shard(s), not ${requested}: the count is fixed when the shards are created (see --help)`,
      { details: { field: 'shards' } },
    );
  }
  if (existing.length > 0 && values.slot) {
    throw new ZerolossError('ZL_INVALID_CONFIG', '--slot names the one slot of an unsharded outbox; this outbox has shards', {
      details: { field: 'slot' },
    });
  }
  return existing.length;
}

/** `relay --mode wal --drop-slot`: the one way to drop the slots, so a forgotten one stops holding WAL. */
async function dropSlot(values: { pg?: string; schema?: string; slot?: string }): Promise<number> {
  const store = postgres(pgUrl(values.pg), { schema: values.schema });
  try {
    const wal = postgresWal(store, { url: pgUrl(values.pg), slot: values.slot });
    const dropped = await wal.dropSlot();
    const shards = await postgresWalShards(store, { url: pgUrl(values.pg) }).dropShards();
    if (shards.length > 0) console.log(`relay: dropped shard slot(s) ${shards.join(', ')}`);
    if (dropped) console.log(`relay: dropped slot ${wal.slot}`);
    else if (shards.length === 0) console.log(`relay: no slot ${wal.slot}`);
    return 0;
  } finally {
    await store.close().catch(() => {});
  }
}

/** EX_CONFIG (sysexits.h): the broker refused our credentials or certificate, a setting to fix. */
const EXIT_REFUSED = 78;
