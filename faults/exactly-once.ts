import type { ExactlyOnce } from './run-scenario.ts';
import type { Scenario } from './scenarios.ts';

/**
 * Scenarios that make no sense with `--exactly-once kafka-transactions`, and why. The processor's effect is
 * an output record, it keeps nothing in Postgres or Redis, and its handler has no attempt number or poison
 * guard: the faults of these scenarios have nothing of it to meet. Every other scenario runs as it is.
 */
const REFUSED_WITH_KAFKA_TRANSACTIONS: Readonly<Record<string, string>> = {
  'handler-faults':
    "its transient and permanent failures are the inbox consumer's (attempt numbers, the dead_letter table); the processor's transform is given no attempt number",
  poison:
    'the processor keeps no start count outside its process (no database), so a message that kills its process is read again by the next one for ever: there is no poison guard to test',
  mixed: 'it adds the handler faults and poison messages, which the processor has no guard for (see handler-faults, poison)',
  'redis-outage': "the processors use no Redis; it is the inbox consumer's fast path",
};

/** Why `scenario` does not run with this exactly-once variant, or undefined when it does. */
export function refusedWith(exactlyOnce: ExactlyOnce, scenario: Scenario): string | undefined {
  return exactlyOnce === 'kafka-transactions' ? REFUSED_WITH_KAFKA_TRANSACTIONS[scenario.name] : undefined;
}
