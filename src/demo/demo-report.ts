import type { DemoProgress, DemoResult } from './run-demo.ts';

const PROMISE = 'delivery is at-least-once; the business effect of each committed message is applied exactly once';

/** One progress line: what the databases hold so far, and what the demo has done to the system. */
export function progressLine(p: DemoProgress, unit: string): string {
  const f = p.figures;
  return [
    `${(p.elapsedMs / 1000).toFixed(0).padStart(4)}s`,
    `${unit} ${p.produced}/${p.target}`,
    `published ${f.published}`,
    `delivered ${f.delivered}`,
    `dead-lettered ${f.deadLettered}`,
    `retried ${p.retried}`,
    `duplicates injected ${p.duplicatesInjected}, skipped ${p.duplicatesSkipped}`,
    `killed: relay ${p.relayKills}, consumers ${p.consumerKills}${p.phase === 'settle' ? ' (faults over, settling)' : ''}`,
  ].join(' │ ');
}

/** The summary table. */
export function summaryText(r: DemoResult): string {
  const mark = (n: number) => (n === 0 ? '✓' : '✗');
  const n = (v: number) => v.toLocaleString('en-US');
  const byType = Object.entries(r.deliveredByType)
    .map(([type, count]) => `${type} ${n(count)}`)
    .join(' · ');
  const what = {
    lottery: { committed: 'award rows in user_strategy_export', published: 'award rows with mq_state = 1', delivered: byType },
    points: { committed: 'orders in shop_order', published: 'outbox rows in state 1', delivered: 'orders with a ledger row' },
    orders: {
      committed: 'orders in customer_order',
      published: 'outbox rows in state 1',
      delivered: `orders deducted by every service (${byType})`,
    },
  }[r.scenario];
  const rows: Array<[string, string, string]> = [
    ['committed', n(r.committed), what.committed],
    ['published', n(r.published), `${what.published} (acknowledged by the transport)`],
    ['delivered', n(r.delivered), what.delivered],
    ['duplicates skipped', n(r.duplicatesSkipped), 'copies the inbox absorbed (relay resends after kills, injected copies, redeliveries)'],
    [
      'retried',
      n(r.retried),
      `failed attempts retried under the type’s policy${
        r.plannedRetries === undefined
          ? ''
          : ` (the fault plan calls for ${n(r.plannedRetries)}; more: attempts cut short by a kill or rebalance, run again)`
      }`,
    ],
    [
      'dead-lettered',
      n(r.deadLettered),
      `${r.checks.unexpectedDeadLetters === 0 && r.checks.missingDeadLetters === 0 ? '✓' : '✗'} expected ${n(r.expectedDeadLettered)}: ${
        { lottery: 'failing permanently or beyond their policy', points: 'the overdrafts', orders: 'none: every fault is transient' }[
          r.scenario
        ]
      }`,
    ],
    ['lost', n(r.lost), `${mark(r.lost)} committed but neither delivered nor dead-lettered`],
    ['applied twice', n(r.appliedTwice), `${mark(r.appliedTwice)} delivered more than once`],
    ['order violations', n(r.orderViolations), `${mark(r.orderViolations)} a user's effects applied out of commit order`],
    [
      'elapsed',
      `${(r.elapsedMs / 1000).toFixed(1)} s`,
      `first ${r.scenario === 'lottery' ? 'draw' : 'order'} to last message settled (+ ${(r.setupMs / 1000).toFixed(1)} s start-up)`,
    ],
    ...(r.retryFloorMs === undefined
      ? []
      : [
          [
            'retry floor',
            `${(r.retryFloorMs / 1000).toFixed(1)} s`,
            `earliest the last message could settle: publish times and the plan's retries ${r.retryDelayMs} ms apart, in each user's order, all else free; elapsed beyond it ${((r.elapsedMs - r.retryFloorMs) / 1000).toFixed(1)} s`,
          ] as [string, string, string],
        ]),
    ['throughput', n(r.throughputPerSec), 'messages settled per second'],
  ];
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  const lines = [
    '',
    `zeroloss demo: ${r.title}. ${capitalise(PROMISE)}.`,
    '',
    ...rows.map(([label, value, note]) => `  ${label.padEnd(w0)}  ${value.padStart(w1)}  ${note}`),
  ];
  if (r.points) {
    const b = r.points;
    lines.push(
      '',
      `  balances  opening ${n(b.openingTotal)} − applied ${n(b.appliedPoints)} = ${n(b.openingTotal - b.appliedPoints)}, balances now ${n(b.balanceTotal)} ${
        b.openingTotal - b.appliedPoints === b.balanceTotal ? '✓' : '✗'
      }`,
      `            ordered ${n(b.committedPoints)} = applied ${n(b.appliedPoints)} + dead-lettered ${n(b.deadLetteredPoints)} ${
        b.committedPoints === b.appliedPoints + b.deadLetteredPoints ? '✓' : '✗'
      }; accounts off their ledger: ${b.accountsOff} ${mark(b.accountsOff)}`,
    );
  }
  if (r.services) lines.push('', ...serviceLines(r.services));
  if (r.reconciliation) lines.push('', ...reconciliationLines(r.reconciliation));
  lines.push(
    '',
    `faults: relay killed ${r.faults.relayKills}×, consumers killed ${r.faults.consumerKills}× (no graceful stop), ` +
      `${n(r.faults.duplicatesInjected)} duplicate records published straight to the transport, handlers failing per the fault plan (seed ${r.seed}); ` +
      `${n(r.poisonSuspects)} attempt(s) run alone as poison suspects (records whose handler was running at a kill)`,
  );
  const problems = [
    !r.checks.settled && 'not everything settled before the timeout',
    r.checks.parked > 0 && `${r.checks.parked} message(s) parked by the relay`,
    r.checks.deliveredAndDeadLettered > 0 && `${r.checks.deliveredAndDeadLettered} delivered and dead-lettered`,
    r.checks.unexpectedDeadLetters > 0 && `${r.checks.unexpectedDeadLetters} dead letter(s) the plan did not call for`,
    r.checks.missingDeadLetters > 0 && `${r.checks.missingDeadLetters} expected dead letter(s) missing`,
    r.faults.unexpectedExits > 0 && `${r.faults.unexpectedExits} instance(s) died on their own`,
    r.examples.lost.length > 0 && `lost e.g. ${r.examples.lost.join(', ')}`,
    r.examples.appliedTwice.length > 0 && `applied twice e.g. ${r.examples.appliedTwice.join(', ')}`,
    r.examples.outOfOrder.length > 0 && `out of order e.g. ${r.examples.outOfOrder.join(', ')}`,
  ].filter(Boolean);
  if (problems.length > 0) lines.push(`problems: ${problems.join('; ')}`);
  if (r.errors.count > 0) lines.push(`reported by the instances (survived): ${r.errors.count} error(s), e.g. ${r.errors.sample[0]}`);
  lines.push(r.ok ? 'result: OK' : 'result: FAILED');
  return lines.join('\n');
}

/** The JSON form: the summary's figures under stable keys, plus the detail. */
export function summaryJson(r: DemoResult): Record<string, unknown> {
  return {
    scenario: r.scenario,
    committed: r.committed,
    published: r.published,
    delivered: r.delivered,
    deliveredByType: r.deliveredByType,
    duplicatesSkipped: r.duplicatesSkipped,
    retried: r.retried,
    deadLettered: r.deadLettered,
    expectedDeadLettered: r.expectedDeadLettered,
    lost: r.lost,
    appliedTwice: r.appliedTwice,
    orderViolations: r.orderViolations,
    elapsedMs: r.elapsedMs,
    setupMs: r.setupMs,
    ...(r.retryFloorMs === undefined ? {} : { retryFloorMs: r.retryFloorMs }),
    retryDelayMs: r.retryDelayMs,
    ...(r.plannedRetries === undefined ? {} : { plannedRetries: r.plannedRetries }),
    throughputPerSec: r.throughputPerSec,
    faults: r.faults,
    poisonSuspects: r.poisonSuspects,
    checks: r.checks,
    ...(r.points ? { points: r.points } : {}),
    ...(r.services ? { services: r.services } : {}),
    ...(r.reconciliation ? { reconciliation: r.reconciliation } : {}),
    database: r.database,
    transport: r.transport,
    seed: r.seed,
    users: r.users,
    errors: r.errors,
    ...(r.kept ? { kept: r.kept } : {}),
    ok: r.ok,
  };
}

/** Orders: one line per consuming service, each in its own group. */
function serviceLines(services: NonNullable<DemoResult['services']>): string[] {
  const mark = (n: number) => (n === 0 ? '✓' : '✗');
  return Object.entries(services).map(
    ([name, s]) =>
      `  ${name.padEnd(9)}  applied ${s.applied} (${s.repaired} by the reconciliation) · lost ${s.lost} ${mark(s.lost)} · ` +
      `applied twice ${s.appliedTwice} ${mark(s.appliedTwice)} · out of order ${s.orderViolations} ${mark(s.orderViolations)} · ` +
      `dead-lettered ${s.deadLettered} · deducted ${s.deducted} · rows off their entries ${s.holdersOff} ${mark(s.holdersOff)}`,
  );
}

/** Orders: what the business reconciliation (orders vs each service's entries, by order id) found and repaired. */
function reconciliationLines(c: NonNullable<DemoResult['reconciliation']>): string[] {
  const ids = (list: string[]) =>
    list.length === 0 ? 'none' : `${list.length}: ${list.slice(0, 10).join(', ')}${list.length > 10 ? ', …' : ''}`;
  const lines = [`  business reconciliation of ${c.orders} orders (orders vs stock movements, budget entries, points ledger):`];
  for (const service of Object.keys(c.found)) {
    lines.push(
      `    ${service.padEnd(9)}  placed but not deducted: ${ids(c.found[service] ?? [])}; repaired ${(c.repaired[service] ?? []).length}` +
        ((c.skipped[service] ?? []).length > 0 ? `; skipped on purpose ${(c.skipped[service] ?? []).length}` : ''),
    );
  }
  lines.push(
    `    found ${c.foundExactlySkipped ? 'exactly the skipped deductions ✓' : 'other than the skipped deductions ✗'}; second pass ${
      c.secondPassClean ? 'clean ✓' : 'not clean ✗'
    }`,
  );
  for (const f of c.failed.slice(0, 5)) lines.push(`    repair failed: ${f.service} ${f.orderId}: ${f.reason}`);
  return lines;
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
