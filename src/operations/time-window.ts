import { ZerolossError } from '../core/errors.ts';

/** A half-open time window [from, to). */
export interface TimeWindow {
  from: Date;
  to: Date;
}

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration like `500ms`, `30s`, `15m`, `2h`, `7d` (or plain milliseconds). */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) throw new ZerolossError('ZL_INVALID_CONFIG', `not a duration: ${JSON.stringify(text)} (use e.g. 30s, 15m, 2h, 7d)`);
  return Math.round(Number(match[1]) * (UNITS[match[2] ?? 'ms'] as number));
}

/**
 * Parses a point in time: `now`, a duration ago (`15m`, `-15m`, `2h`), epoch milliseconds (13+ digits),
 * or an ISO-8601 date or timestamp (a date alone is midnight UTC).
 */
export function parseTime(text: string, now: Date = new Date()): Date {
  const t = text.trim();
  if (t === 'now') return new Date(now);
  if (/^\d{13,}$/.test(t)) return new Date(Number(t));
  const ago = /^-?(\d+(?:\.\d+)?(?:ms|s|m|h|d))$/.exec(t);
  if (ago) return new Date(now.getTime() - parseDuration(ago[1] as string));
  const ms = Date.parse(t);
  if (Number.isNaN(ms)) {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      `not a time: ${JSON.stringify(text)} (use ISO-8601, epoch ms, now, or a duration ago like 15m)`,
    );
  }
  return new Date(ms);
}

/** A window from two optional texts; `until` defaults to now, `since` is required. */
export function parseWindow(since: string | undefined, until: string | undefined, now: Date = new Date()): TimeWindow {
  if (since === undefined) throw new ZerolossError('ZL_INVALID_CONFIG', '--since is required');
  const window = { from: parseTime(since, now), to: until === undefined ? new Date(now) : parseTime(until, now) };
  if (window.from.getTime() >= window.to.getTime()) {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      `empty window: since ${window.from.toISOString()} is not before until ${window.to.toISOString()}`,
    );
  }
  return window;
}

/** Splits a window into consecutive slices of at most `sliceMs`. */
export function sliceWindow(window: TimeWindow, sliceMs: number): TimeWindow[] {
  const slices: TimeWindow[] = [];
  for (let start = window.from.getTime(); start < window.to.getTime(); start += sliceMs) {
    slices.push({ from: new Date(start), to: new Date(Math.min(start + sliceMs, window.to.getTime())) });
  }
  return slices;
}
