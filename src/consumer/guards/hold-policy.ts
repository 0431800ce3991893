import { z } from 'zod';
import { ZerolossError } from '../../core/errors.ts';

/**
 * How long a message that says its predecessor has not landed yet (NotYetError) is held in its key's lane,
 * and how often it is checked again: first after `delayMs`, then doubling up to `maxDelayMs`, until
 * `maxMs` has passed since the first refusal, when it is dead-lettered (ZL_HOLD_EXPIRED).
 */
export const holdPolicySchema = z
  .object({
    maxMs: z.number().int().positive().max(3_600_000).default(30_000),
    delayMs: z.number().int().positive().default(100),
    maxDelayMs: z.number().int().positive().default(2_000),
  })
  .strict();

export type HoldPolicyInput = z.input<typeof holdPolicySchema>;
export type HoldPolicy = z.output<typeof holdPolicySchema>;

/** Validates a handler's `hold` option once, at registration. */
export function resolveHoldPolicy(type: string, input: HoldPolicyInput | undefined): HoldPolicy {
  const parsed = holdPolicySchema.safeParse(input ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ZerolossError('ZL_INVALID_CONFIG', `hold of ${type}: ${issue?.path.join('.') || 'option'}: ${issue?.message}`);
  }
  return Object.freeze(parsed.data);
}
