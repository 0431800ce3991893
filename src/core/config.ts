import type { z } from 'zod';
import { ZerolossError } from './errors.ts';

/**
 * Validates a config object once: schema, then defaults, then frozen. Unknown keys are rejected by the
 * schemas (`.strict()`), and the error names the offending key.
 */
export function parseConfig<S extends z.ZodType>(schema: S, input: unknown, what: string): Readonly<z.output<S>> {
  const result = schema.safeParse(input ?? {});
  if (!result.success) {
    const problems = configProblems(result.error.issues);
    throw new ZerolossError('ZL_INVALID_CONFIG', `invalid ${what} config: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`, {
      details: { issues: result.error.issues },
    });
  }
  return Object.freeze(result.data);
}

/**
 * Every problem of a failed validation, each naming its field (`sources[0].stateColumn`). An unknown key is
 * reported by zod on the object that holds it; the key itself is the field here.
 */
export function configProblems(issues: readonly z.core.$ZodIssue[]): Array<{ field: string; message: string }> {
  return issues.map((issue) => {
    const at = fieldPath(issue.path);
    if (issue.code === 'unrecognized_keys') {
      return { field: issue.keys.map((k) => (at ? `${at}.${k}` : k)).join(', '), message: 'unknown key' };
    }
    return { field: at || '(root)', message: issue.message };
  });
}

/** `["sources", 0, "stateColumn"]` → `sources[0].stateColumn`. */
function fieldPath(parts: readonly PropertyKey[]): string {
  return parts.reduce<string>(
    (out, part) => (typeof part === 'number' ? `${out}[${part}]` : out ? `${out}.${String(part)}` : String(part)),
    '',
  );
}
