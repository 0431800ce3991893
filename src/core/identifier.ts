import { ZerolossError } from './errors.ts';

const IDENTIFIER_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** Validates a SQL identifier (schema, table, column) and returns it double-quoted. Never splice raw. */
export function quoteIdent(name: unknown, what = 'identifier'): string {
  if (typeof name !== 'string' || !IDENTIFIER_RE.test(name)) {
    throw new ZerolossError('ZL_INVALID_IDENTIFIER', `invalid ${what} ${JSON.stringify(name)}: must match ${IDENTIFIER_RE}`, {
      details: { name, what },
    });
  }
  return `"${name}"`;
}
