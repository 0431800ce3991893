import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';

const RULES = readFileSync(new URL('../../../ops/alert-rules.yml', import.meta.url), 'utf8');

/** The rule named `name`: its lines up to the next rule or group. */
function rule(name: string): { expr: string; for: string | undefined; block: string } {
  const start = RULES.indexOf(`- alert: ${name}\n`);
  assert.ok(start >= 0, `rule ${name} exists`);
  const rest = RULES.slice(start + 1);
  const end = rest.search(/\n\s+- (alert|name): /);
  const block = end < 0 ? rest : rest.slice(0, end);
  const expr = /^\s+expr: ([^\n]*(?:\n\s{12,}[^\n]*)*)/m.exec(block)?.[1] ?? '';
  return { expr, for: /^\s+for: (\S+)/m.exec(block)?.[1], block };
}

/** The WAL relay's alerts: its record failures page as the polling relay's do; a read slot that stops moving warns. */
describe('ops/alert-rules.yml, WAL relay', () => {
  test("ZerolossRelayRecordFailing watches the WAL relay's record failures beside the polling relay's", () => {
    const r = rule('ZerolossRelayRecordFailing');
    assert.match(r.expr, /increase\(zeroloss_relay_record_failures_total\[10m\]\) > 0/);
    assert.match(r.expr, /increase\(zeroloss_wal_relay_record_failures_total\[10m\]\) > 0/);
    assert.match(r.block, /\{\{ \$labels\.slot \}\}/, 'the summary names the slot of a WAL relay');
  });

  test('a slot that is read but whose lag stays up (nothing moves) alerts for minutes, which ZerolossWalSlotNotRead (inactive slots) does not', () => {
    assert.match(rule('ZerolossWalSlotNotRead').expr, /zeroloss_wal_slot_active == 0/);
    const r = rule('ZerolossWalSlotStalled');
    assert.match(r.expr, /zeroloss_wal_slot_lag_bytes > \d+/);
    assert.match(r.expr, /and on \(slot\) zeroloss_wal_slot_active == 1/);
    assert.ok(r.for !== undefined && /^\d+m$/.test(r.for) && Number.parseInt(r.for, 10) >= 5, `holds for minutes: ${r.for}`);
    assert.match(r.block, /severity: warning/);
  });
});
