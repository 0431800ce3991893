import { PostgresBacklogStore } from '../adapters/postgres/postgres-backlog-store.ts';
import { ZerolossError } from '../core/errors.ts';
import { BacklogPolicy } from '../operations/backlog-policy.ts';
import { parseDuration } from '../operations/time-window.ts';
import type { Logger } from '../ports/logger.ts';
import { intOption } from './args.ts';
import type { OpsContext } from './ops-context.ts';

/** The flags of `serve`'s backlog policy (off unless --degrade-group is given). */
export const backlogPolicyOptions = {
  'degrade-group': { type: 'string' },
  'degrade-topic': { type: 'string', multiple: true },
  'degrade-at': { type: 'string' },
  'restore-at': { type: 'string' },
  'degrade-switch': { type: 'string', multiple: true },
  'degrade-divert': { type: 'string', multiple: true },
  'degrade-every': { type: 'string' },
} as const;

export const backlogPolicyHelp = `Degrading at peak, and restoring (off unless --degrade-group; docs/operations.md, "Backlog and degrading
at peak"):
  --degrade-group <group>     watch this group's total lag
  --degrade-topic <topic>     count only these topics' lag (repeatable; default all the group reads)
  --degrade-at <n>            at this lag or more, turn the switches on and apply the diverts
  --restore-at <n>            at this lag or less, turn off what the policy turned on (default half of
                              --degrade-at); a switch or divert a person set is left alone
  --degrade-switch <name>     a switch to turn on (repeatable)
  --degrade-divert <topic>:<type,...>:<target>
                              a divert rule to apply (repeatable): new messages of these types enqueued
                              for <topic> go to <target> until restored
  --degrade-every <duration>  how often the lag is checked (default 10s)
  Each change is audited with the lag that caused it; 'zeroloss status' shows what is degraded now.`;

type PolicyValues = {
  [K in keyof typeof backlogPolicyOptions]?: (typeof backlogPolicyOptions)[K] extends { multiple: true } ? string[] : string;
};

/**
 * Starts the backlog policy when --degrade-group is given: a check now and then every --degrade-every.
 * Returns what stops it; undefined when the policy is off.
 */
export async function startBacklogPolicy(values: PolicyValues, ops: OpsContext, log: Logger): Promise<(() => void) | undefined> {
  const group = values['degrade-group'];
  if (group === undefined) {
    const stray = (Object.keys(backlogPolicyOptions) as Array<keyof PolicyValues>).find((k) => values[k] !== undefined);
    if (stray) throw new ZerolossError('ZL_INVALID_CONFIG', `--${stray} goes with --degrade-group`);
    return undefined;
  }
  if (values['degrade-at'] === undefined) throw new ZerolossError('ZL_INVALID_CONFIG', '--degrade-group needs --degrade-at <lag>');
  if (!ops.broker) throw new ZerolossError('ZL_INVALID_CONFIG', '--degrade-group needs a broker whose lag can be read');
  const degradeAt = intOption(values['degrade-at'], 'degrade-at', 0);
  const policy = new BacklogPolicy(
    { broker: ops.broker, admin: ops.admin, store: ops.store, switches: new PostgresBacklogStore(ops.db, { schema: ops.schema }) },
    {
      group,
      topics: values['degrade-topic'],
      degradeAt,
      restoreAt: intOption(values['restore-at'], 'restore-at', Math.floor(degradeAt / 2)),
      switches: values['degrade-switch'] ?? [],
      diverts: (values['degrade-divert'] ?? []).map(parseDivert),
    },
  );
  let running = false;
  // A check slower than the interval skips ticks rather than queueing them.
  const check = async () => {
    if (running) return;
    running = true;
    try {
      const r = await policy.check();
      if (r.changed) log.warn({ group, lag: r.lag, changed: r.changed }, `backlog policy: ${r.changed} (group ${group} lag ${r.lag})`);
    } catch (e) {
      log.error({ err: e as Error, task: 'backlog-policy' }, `backlog policy: ${(e as Error).message}`);
    } finally {
      running = false;
    }
  };
  await check();
  const timer = setInterval(check, parseDuration(values['degrade-every'] ?? '10s'));
  return () => clearInterval(timer);
}

function parseDivert(text: string): { topic: string; types: string[]; target: string } {
  const [topic, types, target, ...extra] = text.split(':');
  const list = (types ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  if (!topic || !target || list.length === 0 || extra.length > 0) {
    throw new ZerolossError('ZL_INVALID_CONFIG', `--degrade-divert ${JSON.stringify(text)}: use <topic>:<type,...>:<target>`);
  }
  return { topic, types: list, target };
}
