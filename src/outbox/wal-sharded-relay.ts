import { HookEmitter } from '../core/hook-emitter.ts';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { parseConfig } from '../core/config.ts';
import { ZerolossError } from '../core/errors.ts';
import { assignShards } from '../core/wal-shard-assignment.ts';
import { type Logger, silentLogger } from '../ports/logger.ts';
import type { Tracing } from '../ports/tracing.ts';
import type { Publisher } from '../ports/transport.ts';
import type { WalShard, WalShardSet } from '../ports/wal-shards.ts';
import type { Relay, RelayConfig } from './relay.ts';
import { WalRelay, type WalRelayConfig, type WalRelayEvents, walRetryRelay } from './wal-relay.ts';

/** How the relays share the shards (docs/wal-relay.md, Shards). */
export const walShardingConfigSchema = z
  .object({
    /** How often this relay says it is alive and looks at the shards. */
    checkIntervalMs: z.number().int().positive().default(1_000),
    /** A relay unseen for this long leaves the membership; its shards' fair owners are counted again. */
    memberTimeoutMs: z.number().int().positive().default(10_000),
    /**
     * A shard nobody reads for this long is taken by any relay, whoever its fair owner is: a relay that died
     * (SIGKILL) still counts as a member until `memberTimeoutMs`, but its slot is free at once.
     */
    orphanGraceMs: z.number().int().positive().default(3_000),
  })
  .strict();

export type WalShardingConfig = z.input<typeof walShardingConfigSchema>;

export interface ShardedWalRelayEvents {
  error: [Error];
  parked: [{ source: string; messageIds: string[] }];
  slot: WalRelayEvents['slot'];
  batch: [WalRelayEvents['batch'][0] & { slot: string }];
  /** The shards this instance reads now, after each change. */
  shards: [{ holding: number[] }];
}

interface Held {
  shard: WalShard;
  relay: WalRelay;
  /** When this instance took it, on the server's clock (heartbeat time). */
  since: number;
  /** When this instance took it, on its own clock. */
  sinceLocal: number;
}

/**
 * The WAL relay over a sharded outbox: each shard is a slot of its own, read by one `WalRelay`, and the
 * relays that run share the shards as members of a group. Each shard has a fair owner (`assignShards`: a
 * fair share each, sticky to the slot's current reader). A relay reads the shards it owns, releases one whose owner is
 * another member that has shown itself alive since the shard was taken (a clean stop: its batches in flight
 * are sent, recorded and confirmed first, so the next reader starts after them and no key is reordered),
 * and takes any shard nobody has read for `orphanGraceMs` (its reader died). The slot's one-reader rule
 * fences the readers; the membership only decides who should read. One polling path for failed rows serves
 * every shard of the process.
 */
export class ShardedWalRelay extends HookEmitter<ShardedWalRelayEvents> {
  readonly retries: Relay;
  readonly config: Readonly<z.output<typeof walShardingConfigSchema>>;
  readonly #set: WalShardSet;
  readonly #publisher: Publisher;
  readonly #walConfig: WalRelayConfig | undefined;
  readonly #logger: Logger | undefined;
  readonly #tracing: Tracing | undefined;
  readonly #log: Logger;
  readonly #held = new Map<number, Held>();
  /** Shards being released (their relay finishing its batches): neither taken again nor released twice. */
  readonly #releasing = new Map<number, Promise<void>>();
  /** Since when (local clock) each shard has been seen unread. */
  readonly #unreadSince = new Map<number, number>();
  /** Until when (local clock) this instance stays out of the group: it could not read a shard of its own. */
  #outUntil = 0;
  /** How long it stayed out last time: doubled each time it has to leave again, from memberTimeoutMs. */
  #outFor = 0;
  #running = false;
  #main: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #said = '';

  constructor(options: {
    shards: WalShardSet;
    publisher: Publisher;
    registry?: Registry;
    config?: WalRelayConfig;
    sharding?: WalShardingConfig;
    relay?: RelayConfig;
    logger?: Logger;
    tracing?: Tracing;
  }) {
    super();
    this.config = parseConfig(walShardingConfigSchema, options.sharding ?? {}, 'wal sharding');
    this.#set = options.shards;
    this.#publisher = options.publisher;
    this.#walConfig = options.config;
    this.#logger = options.logger;
    this.#tracing = options.tracing;
    this.retries = walRetryRelay({ ...options, source: options.shards.retrySource });
    this.retries.on('error', (e) => this.emit('error', e));
    this.retries.on('parked', (e) => this.emit('parked', e));
    this.#log = (options.logger ?? silentLogger).child({ component: 'relay', instance: this.retries.instanceId });
    this.on('error', () => {});
  }

  get instanceId(): string {
    return this.retries.instanceId;
  }

  get registry(): Registry {
    return this.retries.registry;
  }

  /** The shards this instance reads now (holding the slot, not standing by). */
  get holding(): number[] {
    return [...this.#held.values()].filter((h) => h.relay.holdingSlot).map((h) => h.shard.shard);
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await this.retries.start();
    this.#main = this.#run();
  }

  /** Finishes every shard's batches in flight, leaves the membership (the others take over at once), stops. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#wake?.();
    await this.#main;
    await Promise.all([...this.#held.keys()].map((n) => this.#release(n)));
    await Promise.all(this.#releasing.values());
    await this.#set.leave(this.instanceId).catch((error) => this.#error(error as Error));
    await this.retries.stop();
  }

  async #run(): Promise<void> {
    while (this.#running) {
      try {
        await this.#balance();
      } catch (error) {
        this.#error(error as Error);
      }
      this.#sayHolding();
      if (!this.#running) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.config.checkIntervalMs);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** One look at the membership and the shards: take what is ours or orphaned, release what is another's. */
  async #balance(): Promise<void> {
    const me = this.instanceId;
    // Out of the group for a while: neither a member (nothing is assigned to it) nor a reader of orphans.
    if (Date.now() < this.#outUntil) return;
    const { now, members } = await this.#set.heartbeat(me, this.config.memberTimeoutMs);
    const shards = await this.#set.list();
    if (shards.length === 0) {
      throw new ZerolossError(
        'ZL_INVALID_CONFIG',
        'the outbox has no WAL shards: create them with `relay --mode wal --create-slot --shards N`',
        {
          retryable: false,
        },
      );
    }
    const owners = assignShards(shards, [...members.keys()]);
    const local = Date.now();
    /** Shards of its own this instance has failed to open for memberTimeoutMs (not because another read them). */
    const unreadable: number[] = [];
    for (const shard of shards) {
      const n = shard.shard;
      const owner = owners.get(n) as string;
      if (shard.active) this.#unreadSince.delete(n);
      else if (!this.#unreadSince.has(n)) this.#unreadSince.set(n, local);
      if (this.#releasing.has(n) || !this.#running) continue;
      const held = this.#held.get(n);
      if (held) {
        if (owner === me) {
          // Its own failures to open the slot, not the slot's being unread: the others take the shard as an
          // orphan and hand it back, so it is never unread for long. memberTimeoutMs: long enough for a
          // passing failure (a restart; the relay's retries back off to 5 s) to clear first.
          const failing = held.relay.failingToReadSince;
          const patience = Math.max(this.config.orphanGraceMs, this.config.memberTimeoutMs);
          if (!held.relay.holdingSlot && failing !== undefined && local - failing >= patience) unreadable.push(n);
          continue;
        }
        // Handed over only to an owner seen alive after this instance took the shard: a member that died
        // keeps its row until memberTimeoutMs, and must not be handed a shard it will never read.
        const ownerAlive = (members.get(owner) ?? 0) > held.since;
        const idleStandby = !held.relay.holdingSlot && local - held.sinceLocal >= this.config.orphanGraceMs;
        if (ownerAlive || idleStandby) void this.#release(n);
      } else if (owner === me || (!shard.active && local - (this.#unreadSince.get(n) ?? local) >= this.config.orphanGraceMs)) {
        await this.#take(shard, now);
      }
    }
    if (this.holding.length > 0) this.#outFor = 0;
    else if (unreadable.length > 0) await this.#leaveForAWhile(unreadable);
  }

  /**
   * This instance reads none of its shards and has not opened one that nobody else reads: it cannot read
   * (no replication access from its host or role, a URL through PgBouncer, max_wal_senders used up).
   * Staying a member, it kept its fair share unread; others took each as an orphan, then handed it back to
   * its live owner, over and over. It leaves the group instead and comes back later to try again. An
   * instance that reads some shard stays: then the fault is the shard's (its slot), which no one can read.
   */
  async #leaveForAWhile(unreadable: number[]): Promise<void> {
    this.#outFor = Math.min(Math.max(this.#outFor * 2, this.config.memberTimeoutMs), 300_000);
    this.#outUntil = Date.now() + this.#outFor;
    this.#error(
      new ZerolossError(
        'ZL_STORE_UNAVAILABLE',
        `cannot read shard(s) ${unreadable.join(', ')} (opening the slot has failed for ${Math.round(Math.max(this.config.orphanGraceMs, this.config.memberTimeoutMs) / 1000)} s and more): leaving the group for ${Math.round(this.#outFor / 1000)} s ` +
          'so the other relays read them (the slot errors above say why)',
        { retryable: true, details: { shards: unreadable } },
      ),
    );
    await Promise.all([...this.#held.keys()].map((n) => this.#release(n)));
    await this.#set.leave(this.instanceId);
  }

  async #take(shard: WalShard, now: number): Promise<void> {
    const { stream, ledger } = this.#set.open(shard, this.instanceId);
    const relay = new WalRelay({
      stream,
      ledger,
      publisher: this.#publisher,
      registry: this.retries.registry,
      config: this.#walConfig,
      logger: this.#logger,
      tracing: this.#tracing,
      retries: this.retries,
    });
    relay.on('slot', (e) => this.emit('slot', e));
    relay.on('batch', (b) => this.emit('batch', { ...b, slot: shard.slot }));
    relay.on('error', (e) => this.emit('error', e));
    this.#held.set(shard.shard, { shard, relay, since: now, sinceLocal: Date.now() });
    this.#log.info({ shard: shard.shard, slot: shard.slot }, `taking shard ${shard.shard} (slot ${shard.slot})`);
    await relay.start();
  }

  /** A clean stop of the shard's relay: what it took from the slot is sent, recorded and confirmed first. */
  #release(n: number): Promise<void> {
    const held = this.#held.get(n);
    const releasing = this.#releasing.get(n);
    if (releasing || !held) return releasing ?? Promise.resolve();
    this.#log.info({ shard: n, slot: held.shard.slot }, `releasing shard ${n} (slot ${held.shard.slot})`);
    const done = held.relay
      .stop()
      .catch((error) => this.#error(error as Error))
      .finally(() => {
        this.#held.delete(n);
        this.#releasing.delete(n);
      });
    this.#releasing.set(n, done);
    return done;
  }

  #sayHolding(): void {
    const holding = this.holding.sort((a, b) => a - b);
    const said = holding.join(',');
    if (said === this.#said) return;
    this.#said = said;
    this.#log.info({ shards: holding }, `reading shard(s) ${said || 'none'}`);
    this.emit('shards', { holding });
  }

  #error(error: Error): void {
    this.#log.error({ err: error, code: (error as { code?: unknown }).code }, error.message);
    this.emit('error', error);
  }
}
