import { ZerolossError } from '../core/errors.ts';
import { parseTime } from '../operations/time-window.ts';

/**
 * Every value a request brings in is checked here before it reaches the operations layer, so a bad id or
 * time range is a 400 naming the field, never a SQL error. Each check throws `BadInput`.
 */
export class BadInput extends ZerolossError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('ZL_INVALID_CONFIG', `${field}: ${message}`);
    this.field = field;
  }
}

// Message ids are caller-chosen text (core/message.ts: at most 128 characters); control characters never
// belong in one and would only serve to forge log lines.
const MESSAGE_ID = /^\P{Cc}{1,128}$/u;
const ROW_ID = /^[1-9][0-9]{0,17}$/;
const TOPIC = /^[a-zA-Z0-9._-]{1,249}$/;
const NAME = /^\P{Cc}{1,255}$/u;
const MAX_WINDOW_MS = 31 * 86_400_000;

export const OUTBOX_STATES = ['pending', 'sent', 'failed', 'parked'] as const;
export const DEAD_LETTER_STATUSES = ['dead', 'replayed', 'discarded', 'all'] as const;

export function messageId(value: unknown, field = 'id'): string {
  if (typeof value !== 'string' || !MESSAGE_ID.test(value))
    throw new BadInput(field, 'not a message id (1-128 characters, no control characters)');
  return value;
}

/** A dead-letter or outbox sequence id: a positive bigint in decimal. */
export function rowId(value: unknown, field = 'id'): string {
  if (typeof value !== 'string' || !ROW_ID.test(value)) throw new BadInput(field, 'not a row id (a positive integer)');
  return value;
}

export function optional<T>(value: string | undefined, check: (v: string) => T): T | undefined {
  return value === undefined || value === '' ? undefined : check(value);
}

export function topic(value: string, field = 'topic'): string {
  if (!TOPIC.test(value)) throw new BadInput(field, 'not a topic name (1-249 of a-z A-Z 0-9 . _ -)');
  return value;
}

export function name(value: string, field: string): string {
  if (!NAME.test(value)) throw new BadInput(field, 'must be 1-255 characters without control characters');
  return value;
}

export function oneOf<T extends string>(value: string, allowed: readonly T[], field: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw new BadInput(field, `must be one of ${allowed.join(', ')}`);
  return value as T;
}

export function limit(value: string | undefined, fallback: number, max = 500): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!/^[0-9]{1,4}$/.test(value) || n < 1 || n > max) throw new BadInput('limit', `must be an integer from 1 to ${max}`);
  return n;
}

/** A time: ISO-8601, epoch ms, `now` or a duration ago (`15m`), as the CLI takes it. */
export function time(value: string, field: string, now: Date): Date {
  if (value.length > 40) throw new BadInput(field, 'too long for a time');
  let at: Date;
  try {
    at = parseTime(value, now);
  } catch {
    throw new BadInput(field, 'not a time (ISO-8601, epoch ms, now, or a duration ago like 15m)');
  }
  if (Number.isNaN(at.getTime()) || at.getUTCFullYear() < 1970 || at.getUTCFullYear() > 9999) throw new BadInput(field, 'out of range');
  return at;
}

/** [from, to): from before to, at most 31 days (a wider read belongs to `zeroloss reconcile --slice`). */
export function window(from: string | undefined, to: string | undefined, defaultFrom: string, now = new Date()): { from: Date; to: Date } {
  const w = { from: time(from || defaultFrom, 'from', now), to: to ? time(to, 'to', now) : new Date(now) };
  if (w.from.getTime() >= w.to.getTime())
    throw new BadInput('from', `must be before to (${w.from.toISOString()} >= ${w.to.toISOString()})`);
  if (w.to.getTime() - w.from.getTime() > MAX_WINDOW_MS) throw new BadInput('to', 'the window is longer than 31 days');
  return w;
}

/** Every action says why: the reason goes to the audit with the actor. */
export function reason(value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw new BadInput('reason', 'a reason is required');
  const text = value.trim();
  if (text.length > 500) throw new BadInput('reason', 'at most 500 characters');
  if (/[^\P{Cc}\t\n\r]/u.test(text)) throw new BadInput('reason', 'contains control characters');
  return text;
}

export function idList(value: unknown, check: (v: unknown, field: string) => string): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > 100) throw new BadInput('ids', 'must be a list of 1 to 100 ids');
  return [...new Set(value.map((v, i) => check(v, `ids[${i}]`)))];
}

/** The JSON body of an action: an object, or a 400. */
export function body(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BadInput('body', 'must be a JSON object');
  return value as Record<string, unknown>;
}

/** A timestamptz as Postgres printed it (`2026-12-05 01:53:07.915123+00`), checked so its cast cannot fail. */
function databaseTime(value: unknown): value is string {
  return (
    typeof value === 'string' &&
    /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2})?$/.test(value) &&
    !Number.isNaN(Date.parse(value.replace(' ', 'T').replace(/([+-]\d{2})$/, '$1:00')))
  );
}

/** A page cursor: base64url JSON of an object, or a 400. */
function cursorObject(value: string, field: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null) return parsed as Record<string, unknown>;
  } catch {}
  throw new BadInput(field, 'not a page cursor');
}

export function encodeCursor(cursor: object): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

/** An inbox page cursor: the last row's processed_at text (as Postgres printed it), group and key. */
export function inboxCursor(value: string): { at: string; groupId: string; idempotencyKey: string } {
  const c = cursorObject(value, 'before');
  const ok =
    databaseTime(c.at) &&
    typeof c.groupId === 'string' &&
    NAME.test(c.groupId) &&
    typeof c.idempotencyKey === 'string' &&
    /^\P{Cc}{1,1024}$/u.test(c.idempotencyKey);
  if (!ok) throw new BadInput('before', 'not a page cursor');
  return { at: c.at as string, groupId: c.groupId as string, idempotencyKey: c.idempotencyKey as string };
}

/** An outbox page cursor: the last row's created_at text (as Postgres printed it) and seq id. */
export function outboxCursor(value: string): { at: string; seqId: string } {
  const c = cursorObject(value, 'after');
  if (!databaseTime(c.at) || typeof c.seqId !== 'string' || !ROW_ID.test(c.seqId)) throw new BadInput('after', 'not a page cursor');
  return { at: c.at, seqId: c.seqId };
}
