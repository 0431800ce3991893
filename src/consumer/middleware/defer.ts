import { ZerolossError, errorSummary } from '../../core/errors.ts';
import type { OutgoingRecord } from '../../core/envelope.ts';
import { isRetryTopic } from '../../core/retry-topics.ts';
import type { Publisher } from '../../ports/transport.ts';
import type { Stage } from '../chain.ts';
import { originalHeaders, type RoutedDelivery } from '../delivery.ts';

/** Header on a deferred copy: where the original sits (`topic/partition/offset`). Such a copy is never deferred again. */
export const DEFERRED_HEADER = 'zl-deferred-from';

/** What the defer stage asks for each record of a listed type; `DegradeSwitches` answers from memory. */
export interface SwitchReader {
  degraded(name: string): boolean;
}

/**
 * Non-core types to set aside while a switch is on (O10): `types` maps a message type to the switch that
 * defers it and the standby topic that keeps it until it is drained.
 */
export interface DeferRules {
  switches: SwitchReader;
  types: Readonly<Record<string, { switch: string; topic: string }>>;
}

/**
 * Defers a record of a listed type while its switch is on: the record goes, bytes and headers unchanged
 * plus `zl-deferred-from`, to the type's standby topic, and only once the broker acknowledged the copy is
 * the original finished (outcome `deferred`, nothing applied, no inbox row). Nothing is ever dropped: a
 * copy the broker refuses, or no publisher, and the record is applied now as if no switch were on. A crash
 * between the copy and the commit redelivers the original; the inbox makes the second copy harmless.
 *
 * Drain the standby topic later — once the switch is off — with a consumer of the same group and handlers;
 * a deferred copy is applied there, never deferred again, so nothing loops. Copies leave their key's order:
 * defer only types whose order against the key's other messages does not matter.
 */
export function deferStage(rules: DeferRules, publisher: Publisher | undefined, report: (error: Error) => void): Stage<RoutedDelivery> {
  return async (d, next) => {
    const rule = rules.types[d.routed.message.type];
    const settable =
      rule !== undefined &&
      publisher !== undefined &&
      d.record.headers[DEFERRED_HEADER] === undefined &&
      !isRetryTopic(d.record.topic) &&
      d.record.topic !== rule.topic;
    if (!settable || !rules.switches.degraded(rule.switch)) return next(d);
    const copy: OutgoingRecord = {
      topic: rule.topic,
      key: d.record.key,
      value: d.record.value,
      headers: { ...originalHeaders(d.record.headers), [DEFERRED_HEADER]: `${d.record.topic}/${d.record.partition}/${d.record.offset}` },
    };
    try {
      const [outcome] = await publisher.publish([copy]);
      if (!outcome?.ok) throw outcome?.error ?? new ZerolossError('ZL_SEND_FAILED', 'the publisher gave no outcome');
    } catch (error) {
      report(
        new ZerolossError('ZL_SEND_FAILED', `not deferred to ${rule.topic}, applied now instead: ${errorSummary(error)}`, {
          retryable: true,
          cause: error,
        }),
      );
      return next(d);
    }
    d.outcome = { kind: 'deferred', topic: rule.topic };
  };
}
