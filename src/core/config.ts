import type { z } from 'zod';
import { ZerolossError } from './errors.ts';

/**
 * Validates a config object once: schema, then defaults, then frozen. Unknown keys are rejected by the
 * schemas (`.strict()`), and the error names the offending key.
 */
export function parseConfig<S extends z.ZodType>(schema: S, input: unknown, what: string): Readonly<z.output<S>> {
  const result = schema.safeParse(input ?? {});
  if (!result.success) {
    const issues = result.error.issues
      .map((issue) => {
        const path = issue.path.join('.');
        const keys = 'keys' in issue && Array.isArray(issue.keys) ? ` ${issue.keys.join(', ')}` : '';
        return `${path || '(root)'}: ${issue.message}${keys}`;
      })
      .join('; ');
    throw new ZerolossError('ZL_INVALID_CONFIG', `invalid ${what} config: ${issues}`, { details: { issues: result.error.issues } });
  }
  return Object.freeze(result.data);
}
