/**
 * A flat field/value reply (XINFO STREAM, XINFO GROUPS and XINFO CONSUMERS entries under RESP2) as a map by
 * field name; values are left as the client gave them.
 */
export function replyFields(flat: unknown[]): Map<string, unknown> {
  const fields = new Map<string, unknown>();
  for (let i = 0; i + 1 < flat.length; i += 2) fields.set(String(flat[i]), flat[i + 1]);
  return fields;
}
