import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runDemo } from '../helpers/demo-cli.ts';

const ORDERS = 100;
/** Short runs: few orders, short retry delays; the kills (each instance at least once) set the pace. */
const SHORT = ['--users', '20', '--draws', String(ORDERS), '--retry-delay-ms', '200', '--kill-every-ms', '800'];
const SERVICES = ['inventory', 'budget', 'points'] as const;

interface ServiceJson {
  applied: number;
  repaired: number;
  lost: number;
  appliedTwice: number;
  deadLettered: number;
  orderViolations: number;
  holdersOff: number;
}

interface OrdersJson {
  committed: number;
  published: number;
  delivered: number;
  lost: number;
  appliedTwice: number;
  duplicatesSkipped: number;
  retried: number;
  faults: { relayKills: number; consumerKills: number; duplicatesInjected: number };
  checks: { settled: boolean };
  services: Record<(typeof SERVICES)[number], ServiceJson>;
  reconciliation: {
    orders: number;
    found: Record<string, string[]>;
    repaired: Record<string, string[]>;
    skipped: Record<string, string[]>;
    firstPassClean: boolean;
    secondPassClean: boolean;
    foundExactlySkipped: boolean;
    ok: boolean;
  };
  ok: boolean;
}

/** Runs `zeroloss demo orders … --json` through the CLI; returns its exit code and parsed JSON. */
async function demoOrders(args: string[]): Promise<{ code: number | null; json: OrdersJson; context: string }> {
  const { code, json, stderr } = await runDemo<OrdersJson>(['orders', ...SHORT, ...args]);
  return { code, json, context: `\n${JSON.stringify(json, null, 2)}\n${stderr.slice(-2_000)}` };
}

/** Every run, skipped deductions or not: nothing lost or applied twice in any service, under real faults. */
function assertEachServiceOnce(r: { code: number | null; json: OrdersJson; context: string }) {
  const { json: j, context } = r;
  assert.equal(j.committed, ORDERS, context);
  assert.equal(j.published, ORDERS, context);
  assert.equal(j.checks.settled, true, context);
  for (const s of SERVICES) {
    const f = j.services[s];
    assert.equal(f.applied, ORDERS, `${s} deducted every order${context}`);
    assert.equal(f.lost, 0, `${s} lost${context}`);
    assert.equal(f.appliedTwice, 0, `${s} applied twice${context}`);
    assert.equal(f.deadLettered, 0, `${s} dead letters${context}`);
    assert.equal(f.orderViolations, 0, `${s} order${context}`);
    assert.equal(f.holdersOff, 0, `${s} balances match their entries${context}`);
  }
  assert.ok(j.faults.relayKills >= 1 && j.faults.consumerKills >= 2, `instances killed${context}`);
  assert.ok(j.faults.duplicatesInjected > 0 && j.duplicatesSkipped > 0, `duplicates injected and skipped${context}`);
  assert.equal(j.reconciliation.secondPassClean, true, context);
  assert.equal(j.ok, true, context);
  assert.equal(r.code, 0, `exit code${context}`);
}

// The two runs go side by side. The timeouts are deadlines, not speed targets: one run took 22 s on a
// lightly loaded 2-core machine and 92 s at a load average of 14, most of it start-up (PGlite,
// migrations, three worker threads).
describe('zeroloss demo orders', { concurrency: 2 }, () => {
  test('every service deducts each order once; the business reconciliation is clean', { timeout: 300_000 }, async () => {
    const r = await demoOrders(['--seed', '3131']);
    assertEachServiceOnce(r);
    assert.equal(r.json.reconciliation.firstPassClean, true, r.context);
    for (const s of SERVICES) {
      assert.deepEqual(r.json.reconciliation.found[s], [], r.context);
      assert.equal(r.json.services[s].repaired, 0, r.context);
    }
  });

  test('deliberately skipped points deductions are found and repaired, exactly those', { timeout: 300_000 }, async () => {
    const r = await demoOrders(['--seed', '3132', '--skip-points', '4']);
    assertEachServiceOnce(r);
    const c = r.json.reconciliation;
    assert.equal(c.skipped.points?.length, 4, r.context);
    assert.equal(c.firstPassClean, false, r.context);
    assert.deepEqual(c.found.points, c.skipped.points, `found exactly the skipped orders${r.context}`);
    assert.deepEqual(c.repaired.points, c.skipped.points, `repaired exactly them${r.context}`);
    assert.deepEqual(c.found.inventory, [], r.context);
    assert.deepEqual(c.found.budget, [], r.context);
    assert.equal(c.foundExactlySkipped, true, r.context);
    assert.equal(r.json.services.points.repaired, 4, r.context);
    assert.equal(r.json.services.inventory.repaired + r.json.services.budget.repaired, 0, r.context);
  });
});
