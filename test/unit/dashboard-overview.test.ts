import assert from 'node:assert/strict';
import { test } from 'node:test';
import { overviewPage } from '../../src/dashboard/pages/overview-page.ts';
import type { Status } from '../../src/operations/status.ts';

const quiet: Status = {
  at: '2026-12-05T12:00:00.000Z',
  outbox: { pending: 0, failed: 0, parked: 0, stuck: 0, oldestUnsentAgeMs: 0 },
  sources: [],
  unavailableTopics: [],
  parked: [],
  groups: [],
  alarms: [],
  lastReconcile: [],
  heldRuns: [],
  confirmations: [],
  degraded: { switches: [], diverts: [] },
  sequenceGaps: [],
  warnings: [],
} as unknown as Status;

test('the overview shows reconciliation runs held for approval (O8), with the command that approves one', () => {
  const none = overviewPage(quiet, undefined, undefined).toString();
  assert.match(none, /data-figure="held-runs">0</);
  assert.doesNotMatch(none, /id="held-runs"/);

  const run = {
    id: '42',
    kind: 'scheduled',
    windowFrom: new Date('2026-12-05T10:00:00Z'),
    windowTo: new Date('2026-12-05T11:00:00Z'),
    finishedAt: new Date('2026-12-05T11:01:00Z'),
    verdict: 'gaps',
    held: 1500,
  };
  const page = overviewPage({ ...quiet, heldRuns: [run] }, undefined, undefined).toString();
  assert.match(
    page,
    /<div class="figure alarm"><span class="label">reconciliations held for approval<\/span><span class="value" data-figure="held-runs">1</,
  );
  assert.match(page, /<table id="held-runs">.*<td>42<\/td><td>scheduled<\/td>.*<td>1500<\/td>/s);
  assert.match(page, /zeroloss reconcile --approve &lt;run&gt; --reason/);
});
