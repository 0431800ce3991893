const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Why a string cannot go to Postgres as text or inside jsonb, or undefined if it can. A NUL is refused by
 * both (22021, 22P05) and a lone UTF-16 surrogate has no UTF-8 form: the driver either fails the
 * statement or rewrites it to U+FFFD, changing the key without a word. Either error would abort the
 * caller's transaction, so every such field is checked before any SQL: the producer's on enqueue, the
 * consumer's envelope as it is read.
 */
export function unstorableText(value: string): string | undefined {
  if (value.includes('\u0000')) return 'contains a NUL character';
  if (LONE_SURROGATE.test(value)) return 'contains a lone UTF-16 surrogate (not valid Unicode)';
  return undefined;
}

/** `value` with what `unstorableText` refuses replaced by U+FFFD: for text kept to describe, not to match (dead letters). */
export function storableText(value: string): string {
  return value.replaceAll('\u0000', '\uFFFD').replace(/\p{Cs}/gu, '\uFFFD');
}
