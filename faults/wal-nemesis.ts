import pg from 'pg';
import { between, type NemesisContext } from './nemesis.ts';
import type { SlotHolders } from './slot-holders.ts';

/**
 * Faults aimed at the WAL relay (`--relay-mode wal`): they act on the relay reading the slot (found from
 * what the relays log, faults/slot-holders.ts) and on the slot itself, and time each takeover.
 */

/**
 * Long enough for a relay process to start on a loaded 2-core machine and say what it is: at load 30 (two
 * runs at once beside other jobs) 60 s was not, and a run failed waiting for a standby.
 */
const HOLDER_TIMEOUT_MS = 180_000;

function slotOf(ctx: NemesisContext): SlotHolders {
  if (!ctx.slot) throw new Error('this fault needs --relay-mode wal');
  return ctx.slot;
}

/**
 * SIGKILLs the slot holder every `gapMs` while the workload runs, and at least `minKills` times, each time
 * once another relay stands by (as in production, where a standby waits), and restarts it at once. The
 * takeover is timed from the kill to another relay saying it reads the slot.
 */
export async function killSlotHolder(ctx: NemesisContext, options: { minKills: number; gapMs: [number, number] }): Promise<void> {
  const slot = slotOf(ctx);
  let kills = 0;
  while (ctx.workloadRunning() || kills < options.minKills) {
    await ctx.pause(between(ctx.random, ...options.gapMs));
    const holder = await slot.holder(HOLDER_TIMEOUT_MS, { standby: true });
    const killedAt = Date.now();
    slot.gone(holder);
    await ctx.relays.killAndRestart(holder);
    kills++;
    const next = await slot.takeover(killedAt, 30_000);
    ctx.event(`SIGKILL slot holder ${holder}, restarted; ${next.name} reads the slot ${next.ms} ms later`);
  }
}

/**
 * SIGSTOPs the slot holder for `frozenMs`, past wal_sender_timeout (the server ends its replication
 * connection and frees the slot for a standby) and past the polling path's lease, then SIGCONTs it: it
 * wakes with its batches in hand, sends them late (duplicates at worst), and its confirmation goes
 * nowhere. `times` times; each takeover timed from the freeze.
 */
export async function freezeSlotHolder(
  ctx: NemesisContext,
  options: { times: number; frozenMs: number; gapMs: [number, number] },
): Promise<void> {
  const slot = slotOf(ctx);
  for (let i = 0; i < options.times; i++) {
    await ctx.pause(between(ctx.random, ...options.gapMs));
    const holder = await slot.holder(HOLDER_TIMEOUT_MS, { standby: true });
    const frozenAt = Date.now();
    slot.gone(holder);
    ctx.event(`SIGSTOP slot holder ${holder} for ${options.frozenMs} ms`);
    const taking = slot.takeover(frozenAt, options.frozenMs + 30_000);
    taking.catch(() => {});
    if (await ctx.relays.freeze(holder, options.frozenMs, (ms) => ctx.pause(ms))) ctx.event(`SIGCONT ${holder}`);
    const next = await taking;
    ctx.event(`${next.name} read the slot ${next.ms} ms after the freeze`);
  }
}

/**
 * Drops the slot under load while the relays run (its reader's replication connection terminated first:
 * a slot in use cannot be dropped), as a failover to a replica without the slot or an operator's mistake
 * would. For `lostMs` every commit goes into no stream; then relay-1, the instance run with
 * `--create-slot`, is restarted, as the operator would: it creates the slot again and hands every unsent
 * row to the polling path, which sends them while their keys' later rows are held back.
 */
export async function loseSlot(ctx: NemesisContext, lostMs: number): Promise<void> {
  const slot = slotOf(ctx);
  const name = `zeroloss_${ctx.schema}`;
  const pool = new pg.Pool({ connectionString: ctx.env.postgres.url, max: 1 });
  pool.on('error', () => {});
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      await pool.query('select pg_terminate_backend(active_pid, 5000) from pg_replication_slots where slot_name = $1 and active', [name]);
      try {
        await pool.query('select pg_drop_replication_slot($1)', [name]);
        break;
      } catch (error) {
        // A relay took the slot again between the two statements: terminate it again.
        if (!/is active/i.test((error as Error).message) || Date.now() > deadline) throw error;
      }
    }
    for (const s of slot.in('streaming')) slot.gone(s.name);
    ctx.event(`slot ${name} dropped under load (its reader terminated); commits from now on are in no stream for ${lostMs / 1000} s`);
    await ctx.pause(lostMs);
    const handedOver = async () =>
      (
        await pool.query<{ n: number }>(
          `select count(*)::int as n from "${ctx.schema}".outbox_transition where actor = 'zeroloss relay --create-slot' and error like 'handed to the polling path%'`,
        )
      ).rows[0]?.n ?? 0;
    const before = await handedOver();
    const recreatedAt = Date.now();
    await ctx.relays.killAndRestart('relay-1');
    const next = await slot.takeover(recreatedAt, HOLDER_TIMEOUT_MS);
    ctx.event(
      `relay-1 restarted with --create-slot: slot created again, ${(await handedOver()) - before} unsent rows handed to the polling path; ${next.name} reads it ${next.ms} ms after the restart`,
    );
  } finally {
    await pool.end().catch(() => {});
  }
}
