import { ZerolossError } from '../core/errors.ts';
import type { DegradeStore } from '../ports/backlog-store.ts';
import type { BrokerInspector, TopicAdmin } from '../ports/broker-inspector.ts';
import type { DivertStore, StoredOffset } from '../ports/operations-store.ts';
import { divert, undivert } from './backlog.ts';
import { setDegrade, validateSwitchName } from './degrade-switches.ts';
import { partKey } from './reconcile-classify.ts';

export interface BacklogPolicyOptions {
  /** The consumer group whose lag is watched. */
  group: string;
  /** Only these topics' lag counts; default every topic the group has a committed offset on. */
  topics?: string[];
  /** Degrade when the group's total lag is at or above this many records. */
  degradeAt: number;
  /** Restore when it is at or below this; below `degradeAt`, so one burst does not flip things back and forth. */
  restoreAt: number;
  /** Switches turned on at peak (the consumers' `defer` rules and handlers read them). */
  switches: string[];
  /** Divert rules applied at peak: new messages of these types go to `target` until restored. */
  diverts: Array<{ topic: string; types: string[]; target: string }>;
  /** Recorded as who changed things; default `backlog-policy`. Only what this actor turned on is turned off. */
  actor?: string;
}

export interface BacklogPolicyDeps {
  broker: BrokerInspector;
  /** Creates a divert target that does not exist yet (with the source topic's partition count). */
  admin?: TopicAdmin;
  store: DivertStore & { storedOffsets(groups: string[]): Promise<StoredOffset[]> };
  switches: DegradeStore;
}

export interface PolicyCheck {
  lag: number;
  /** Switches and diverts of this policy that are on after the check. */
  active: boolean;
  changed: 'degraded' | 'restored' | undefined;
}

/**
 * Degrades non-core work automatically under backlog, and restores it (O10): when the watched group's lag
 * reaches `degradeAt`, the policy turns its switches on and applies its divert rules; when the lag falls to
 * `restoreAt`, it turns off what it turned on — a switch or divert a person set stays. Every change is
 * audited (backlog.policy.degrade | restore, with the lag and thresholds; each switch and divert under its
 * own action too, its reason naming the lag).
 *
 * The state lives in the database, not here: whether the policy is active is read back at every check (a
 * policy switch on, or a policy divert rule present), so a restarted `serve`, or two of them, carry on
 * where the last check left off. While it is active, a person who turns one of its switches off is not
 * overruled until the lag has gone down and come back up.
 */
export class BacklogPolicy {
  readonly #deps: BacklogPolicyDeps;
  #last: Promise<unknown> = Promise.resolve();
  readonly #options: Required<Omit<BacklogPolicyOptions, 'topics'>> & { topics: string[] | undefined };

  constructor(deps: BacklogPolicyDeps, options: BacklogPolicyOptions) {
    if (!(Number.isSafeInteger(options.degradeAt) && options.degradeAt > 0)) {
      throw new ZerolossError('ZL_INVALID_CONFIG', 'degradeAt must be a positive whole number of records');
    }
    if (!(Number.isSafeInteger(options.restoreAt) && options.restoreAt >= 0 && options.restoreAt < options.degradeAt)) {
      throw new ZerolossError('ZL_INVALID_CONFIG', `restoreAt must be a whole number below degradeAt (${options.degradeAt})`);
    }
    if (options.switches.length === 0 && options.diverts.length === 0) {
      throw new ZerolossError('ZL_INVALID_CONFIG', 'a backlog policy needs at least one switch or divert to turn on');
    }
    for (const name of options.switches) validateSwitchName(name);
    this.#deps = deps;
    this.#options = { ...options, topics: options.topics, actor: options.actor ?? 'backlog-policy' };
  }

  /**
   * Measures the group's lag and degrades or restores when it crossed a threshold. Call it on a timer; a call
   * made while one runs waits for it and then checks again, so overlapping ticks never act twice.
   */
  check(): Promise<PolicyCheck> {
    const run = this.#last.catch(() => undefined).then(() => this.#check());
    this.#last = run;
    return run;
  }

  async #check(): Promise<PolicyCheck> {
    const o = this.#options;
    const lag = await groupLag(this.#deps, o.group, o.topics);
    const owned = await this.#owned();
    const active = owned.switches.length > 0 || owned.diverts.length > 0;
    if (!active && lag >= o.degradeAt) {
      const reason = `group ${o.group} lag ${lag} >= ${o.degradeAt}`;
      const who = { actor: o.actor, reason };
      let changed = 0;
      for (const name of o.switches) {
        if ((await setDegrade(this.#deps.switches, name, true, who, { group: o.group, lag })).changed) changed++;
      }
      const present = await this.#deps.store.divertRules();
      for (const d of o.diverts) {
        const missing = d.types.filter((t) => !present.some((r) => r.topic === d.topic && r.type === t && r.target === d.target));
        if (missing.length === 0) continue;
        await divert({ store: this.#deps.store, admin: this.#deps.admin, broker: this.#deps.broker }, { ...d, types: missing }, who);
        changed++;
      }
      // Another process's policy may have acted between our read and our writes: then nothing changed here.
      if (changed === 0) return { lag, active: true, changed: undefined };
      await this.#audit('backlog.policy.degrade', reason, lag, { switches: o.switches, diverts: o.diverts });
      return { lag, active: true, changed: 'degraded' };
    }
    if (active && lag <= o.restoreAt) {
      const reason = `group ${o.group} lag ${lag} <= ${o.restoreAt}`;
      const who = { actor: o.actor, reason };
      let changed = 0;
      for (const name of owned.switches) {
        if ((await setDegrade(this.#deps.switches, name, false, who, { group: o.group, lag })).changed) changed++;
      }
      for (const d of owned.diverts) changed += (await undivert({ store: this.#deps.store }, d.topic, [d.type], who)).length;
      if (changed === 0) return { lag, active: false, changed: undefined };
      await this.#audit('backlog.policy.restore', reason, lag, { switches: owned.switches, diverts: owned.diverts });
      return { lag, active: false, changed: 'restored' };
    }
    return { lag, active, changed: undefined };
  }

  /** This policy's switches that are on by its hand, and its divert rules that it created. */
  async #owned(): Promise<{ switches: string[]; diverts: Array<{ topic: string; type: string }> }> {
    const o = this.#options;
    const switches = (await this.#deps.switches.switches())
      .filter((s) => s.on && s.by === o.actor && o.switches.includes(s.name))
      .map((s) => s.name);
    const diverts = (await this.#deps.store.divertRules())
      .filter(
        (r) => r.createdBy === o.actor && o.diverts.some((d) => d.topic === r.topic && d.target === r.target && d.types.includes(r.type)),
      )
      .map((r) => ({ topic: r.topic, type: r.type }));
    return { switches, diverts };
  }

  async #audit(action: string, reason: string, lag: number, details: Record<string, unknown>): Promise<void> {
    const o = this.#options;
    await this.#deps.store.audit({
      actor: o.actor,
      action,
      subject: `group:${o.group}`,
      reason,
      details: { lag, degradeAt: o.degradeAt, restoreAt: o.restoreAt, ...details },
    });
  }
}

/**
 * A group's total lag: per partition, the high watermark less the group's next offset (the broker's commit
 * or the offset stored with its effects, whichever is further). Partitions where the group has no offset
 * yet do not count: a group that never started has no backlog to degrade for.
 */
export async function groupLag(
  deps: { broker: BrokerInspector; store: { storedOffsets(groups: string[]): Promise<StoredOffset[]> } },
  group: string,
  topics?: string[],
): Promise<number> {
  const next = new Map<string, { topic: string; partition: number; offset: bigint }>();
  const stored = await deps.store.storedOffsets([group]);
  for (const c of [...(await deps.broker.committedOffsets(group)), ...stored]) {
    if (topics && !topics.includes(c.topic)) continue;
    const k = partKey(c.topic, c.partition);
    const cur = next.get(k);
    if (!cur || c.offset > cur.offset) next.set(k, { topic: c.topic, partition: c.partition, offset: c.offset });
  }
  let lag = 0n;
  for (const topic of new Set([...next.values()].map((c) => c.topic))) {
    for (const m of (await deps.broker.watermarks(topic)) ?? []) {
      const c = next.get(partKey(topic, m.partition));
      if (c && m.high > c.offset) lag += m.high - c.offset;
    }
  }
  return Number(lag);
}
