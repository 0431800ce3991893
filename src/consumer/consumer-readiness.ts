import { databaseCheck } from '../operations/database-check.ts';
import type { ReadinessCheck } from '../ports/readiness.ts';
import type { SqlExecutor } from '../ports/sql-executor.ts';

/**
 * A consumer is ready while it runs with a live subscription and its database answers. The broker is
 * judged by the subscription the consumer holds (the client reconnects on its own); a probe never
 * costs the broker a request.
 */
export function consumerReadiness(
  consumer: { health(): { state: string; subscribed: boolean } },
  db: SqlExecutor,
): Record<string, ReadinessCheck> {
  return {
    database: databaseCheck(db),
    consumer: () => {
      const { state, subscribed } = consumer.health();
      if (state !== 'running') return { ok: false, detail: `the consumer is ${state}` };
      return subscribed ? { ok: true } : { ok: false, detail: 'not subscribed yet' };
    },
  };
}
