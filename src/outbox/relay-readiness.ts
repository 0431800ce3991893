import { databaseCheck } from '../operations/database-check.ts';
import type { ReadinessCheck } from '../ports/readiness.ts';
import type { SqlExecutor } from '../ports/sql-executor.ts';
import type { Relay } from './relay.ts';

/**
 * A relay is ready when its database answers, its last send reached the broker, and no claim loop has
 * been inside one turn for longer than the lease: past that, the rows it holds are another relay's to
 * take, so a loop that long in one turn is stuck, not busy. The broker is judged by what the relay
 * already knows (an idle relay that has not sent since the broker went away still says ready), which
 * costs the broker nothing per probe.
 */
export function relayReadiness(relay: Relay, db: SqlExecutor): Record<string, ReadinessCheck> {
  return {
    database: databaseCheck(db),
    broker: () => {
      const down = relay.health().brokerUnreachable;
      return down.length === 0 ? { ok: true } : { ok: false, detail: `the last send of ${down.join(', ')} found no broker reachable` };
    },
    loop: () => {
      const health = relay.health();
      if (!health.running || health.loops === 0) return { ok: false, detail: 'the relay is not running' };
      if (health.longestTurnMs > relay.config.leaseMs) {
        return {
          ok: false,
          detail: `a claim loop has been in one turn for ${Math.round(health.longestTurnMs)} ms (lease ${relay.config.leaseMs} ms)`,
        };
      }
      return { ok: true };
    },
  };
}
