import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { createConsumerMetrics } from '../../../src/consumer/consumer-metrics.ts';
import { createOpsMetrics } from '../../../src/operations/ops-metrics.ts';
import { createRelayMetrics } from '../../../src/outbox/relay-metrics.ts';
import { createWalRelayMetrics } from '../../../src/outbox/wal-relay-metrics.ts';

const RULES = readFileSync(new URL('../../../ops/alert-rules.yml', import.meta.url), 'utf8');

describe('ops/alert-rules.yml', () => {
  test('every metric a rule uses exists', () => {
    const registry = new Registry();
    createOpsMetrics(registry);
    createRelayMetrics(registry);
    createWalRelayMetrics(registry);
    createConsumerMetrics(registry);
    const known = new Set(registry.getMetricsAsArray().map((m) => m.name));
    const used = new Set(
      [...RULES.matchAll(/^\s+expr:[^\n]*(?:\n\s{12,}[^\n]*)*/gm)].flatMap((m) => [...m[0].matchAll(/zeroloss_[a-z_]+/g)].map((x) => x[0])),
    );
    assert.ok(used.size > 10);
    for (const name of used) {
      const base = name.replace(/_(bucket|sum|count)$/, '');
      assert.ok(known.has(base), `${name} is not a zeroloss metric`);
    }
  });

  test('every rule has a comment, a severity and a summary', () => {
    const lines = RULES.split('\n');
    const alerts = lines.flatMap((l, i) => (/^\s+- alert: /.test(l) ? [i] : []));
    assert.ok(alerts.length >= 15);
    for (const i of alerts) {
      assert.match(lines[i - 1] ?? '', /^\s+#/, `rule at line ${i + 1} explains itself`);
      const block = lines.slice(i, alerts.find((j) => j > i) ?? lines.length).join('\n');
      assert.match(block, /severity: (critical|warning)/);
      assert.match(block, /summary: /);
    }
  });
});
