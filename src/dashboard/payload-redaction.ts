/**
 * Payloads can hold personal data: pages show them through this, configured once. `fields` replaces those
 * JSON keys at any depth; a function sees the decoded payload (JSON when it parses, else the text) and
 * returns what may be shown. Neither: shown as stored.
 */
export type Redaction = { fields: string[] } | { redact: (payload: unknown) => unknown } | undefined;

export const REDACTED = '[redacted]';

export function redactPayload(bytes: Buffer, redaction: Redaction): string {
  const text = bytes.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(bytes)) return redaction ? REDACTED : `(base64) ${bytes.toString('base64')}`;
  if (!redaction) return text;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = text;
  }
  try {
    const shown = 'fields' in redaction ? dropFields(value, new Set(redaction.fields)) : redaction.redact(value);
    return typeof shown === 'string' ? shown : JSON.stringify(shown);
  } catch {
    // A redaction function that fails shows nothing rather than everything.
    return REDACTED;
  }
}

function dropFields(value: unknown, fields: Set<string>): unknown {
  if (Array.isArray(value)) return value.map((v) => dropFields(v, fields));
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fields.has(k) ? REDACTED : dropFields(v, fields)]));
}

/** A connection URL with its user's password masked, for pages and logs. */
export function safeUrl(url: string): string {
  return url.replace(/(\/\/[^/:@\s]*):[^@/\s]*@/g, '$1:***@');
}
