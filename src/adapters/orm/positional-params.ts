/** A statement cut at its `$n` parameters: text pieces with the 0-based parameter index between them. */
export interface SplitStatement {
  /** `texts.length === indexes.length + 1`: texts[0], $indexes[0], texts[1], … */
  texts: string[];
  indexes: number[];
}

const IDENTIFIER_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/;

/**
 * Splits SQL written with Postgres placeholders (`$1…$n`, a parameter may appear several times) at each
 * placeholder, for drivers that number parameters themselves (Drizzle's chunks, Knex's `?`).
 *
 * A `$` is a placeholder only where Postgres reads one: outside '…' and E'…' strings, "…" identifiers,
 * $tag$…$tag$ strings, -- and nested block comments, and not inside a word (`a$1` is an identifier). The
 * texts are returned verbatim, quotes and comments included.
 */
export function splitPositional(sql: string): SplitStatement {
  const texts: string[] = [];
  const indexes: number[] = [];
  let start = 0;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    const next = sql[i + 1];
    if (c === "'" || c === '"') {
      i = endOfQuoted(sql, i, c, c === "'" && isEscapeString(sql, i));
    } else if (c === '-' && next === '-') {
      const eol = sql.indexOf('\n', i);
      i = eol === -1 ? sql.length : eol + 1;
    } else if (c === '/' && next === '*') {
      i = endOfBlockComment(sql, i);
    } else if (c === '$' && !(i > 0 && IDENTIFIER_CHAR.test(sql[i - 1] ?? ''))) {
      const digits = /^\$([0-9]+)/.exec(sql.slice(i, i + 12));
      const tag = digits ? null : /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(sql.slice(i));
      if (digits?.[1] !== undefined) {
        texts.push(sql.slice(start, i));
        indexes.push(Number(digits[1]) - 1);
        i += digits[0].length;
        start = i;
      } else if (tag) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        i = close === -1 ? sql.length : close + tag[0].length;
      } else {
        i += 1;
      }
    } else {
      i += 1;
    }
  }
  texts.push(sql.slice(start));
  return { texts, indexes };
}

/** E'…' (and e'…') strings take backslash escapes; standard strings only double the quote. */
function isEscapeString(sql: string, quote: number): boolean {
  const prefix = sql[quote - 1];
  return (prefix === 'E' || prefix === 'e') && !IDENTIFIER_CHAR.test(sql[quote - 2] ?? '');
}

function endOfQuoted(sql: string, open: number, quote: string, backslashEscapes: boolean): number {
  let i = open + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (backslashEscapes && c === '\\') i += 2;
    else if (c === quote && sql[i + 1] === quote) i += 2;
    else if (c === quote) return i + 1;
    else i += 1;
  }
  return sql.length;
}

function endOfBlockComment(sql: string, open: number): number {
  let depth = 0;
  let i = open;
  while (i < sql.length) {
    if (sql[i] === '/' && sql[i + 1] === '*') {
      depth += 1;
      i += 2;
    } else if (sql[i] === '*' && sql[i + 1] === '/') {
      depth -= 1;
      i += 2;
      if (depth === 0) return i;
    } else {
      i += 1;
    }
  }
  return sql.length;
}

/** The values in placeholder order, a repeated `$n` repeated; a `$n` past the parameters given is an error. */
export function valuesInOrder(split: SplitStatement, params: readonly unknown[], who: string): unknown[] {
  return split.indexes.map((index) => {
    if (index < 0 || index >= params.length) {
      throw new RangeError(`${who}: the statement uses $${index + 1} but ${params.length} parameter(s) were given`);
    }
    return params[index];
  });
}
