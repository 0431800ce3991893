import { ZerolossError } from '../../core/errors.ts';
import { quoteIdent } from '../../core/identifier.ts';
import type { DegradeStore, DegradeSwitch, ForwardLog, ForwardRange, ForwardRun } from '../../ports/backlog-store.ts';
import type { Database } from '../../ports/sql-executor.ts';
import { type BacklogSql, backlogSql } from './backlog-sql.ts';
import { jsonReplacer } from './postgres-operations-store.ts';

type Row = Record<string, unknown>;

/** Degrade switches and the forward record in the zeroloss schema. Thin: every statement lives in backlog-sql.ts. */
export class PostgresBacklogStore implements DegradeStore, ForwardLog {
  readonly schema: string;
  readonly #db: Database;
  readonly #sql: BacklogSql;

  constructor(db: Database, options: { schema?: string } = {}) {
    this.schema = options.schema ?? 'zeroloss';
    this.#db = db;
    this.#sql = backlogSql(quoteIdent(this.schema, 'schema'));
  }

  async #rows(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await this.#db.query<Row>(sql, params)).rows;
  }

  async switches(): Promise<DegradeSwitch[]> {
    return (await this.#rows(this.#sql.switches)).map(degradeSwitch);
  }

  async setSwitch(
    name: string,
    on: boolean,
    actor: string,
    reason: string | undefined,
    details: Record<string, unknown> = {},
  ): Promise<{ switch: DegradeSwitch; changed: boolean }> {
    const [row] = await this.#rows(this.#sql.setSwitch, [name, on, actor, reason ?? null, JSON.stringify(details, jsonReplacer)]);
    if (!row) throw new ZerolossError('ZL_UNKNOWN', `switch ${name} was neither written nor found`);
    return { switch: degradeSwitch(row), changed: row.changed === true };
  }

  async startForward(run: Omit<ForwardRun, 'id' | 'startedAt' | 'finishedAt' | 'forwarded' | 'error'>): Promise<string> {
    const [row] = await this.#rows(this.#sql.startForward, [
      run.from,
      run.to,
      run.group,
      run.toPartitions,
      JSON.stringify(run.ranges),
      run.planned,
      run.againOf,
      run.actor,
      run.reason,
    ]);
    return String(row?.id);
  }

  async finishForward(id: string, forwarded: number, error: string | undefined): Promise<void> {
    await this.#db.query(this.#sql.finishForward, [id, forwarded, error ?? null]);
  }

  async forwardRun(id: string): Promise<ForwardRun | undefined> {
    if (!/^\d{1,18}$/.test(id)) return undefined;
    const [row] = await this.#rows(this.#sql.forwardRun, [id]);
    return row ? forwardRun(row) : undefined;
  }

  async forwardRuns(limit: number, from?: string): Promise<ForwardRun[]> {
    return (await this.#rows(this.#sql.forwardRuns, [limit, from ?? null])).map(forwardRun);
  }
}

function date(v: unknown): Date {
  return v instanceof Date ? v : new Date(v as string);
}

function degradeSwitch(r: Row): DegradeSwitch {
  return {
    name: String(r.name),
    on: r.is_on === true,
    since: date(r.since),
    by: String(r.changed_by),
    reason: (r.reason as string | null) ?? null,
  };
}

function forwardRun(r: Row): ForwardRun {
  return {
    id: String(r.id),
    startedAt: date(r.started_at),
    finishedAt: r.finished_at === null ? null : date(r.finished_at),
    from: String(r.from_topic),
    to: String(r.to_topic),
    group: String(r.consumer_group),
    toPartitions: Number(r.to_partitions),
    ranges: (typeof r.ranges === 'string' ? JSON.parse(r.ranges) : r.ranges) as ForwardRange[],
    planned: Number(r.planned),
    forwarded: Number(r.forwarded),
    error: (r.error as string | null) ?? null,
    againOf: (r.again_of as string | null) ?? null,
    actor: String(r.actor),
    reason: (r.reason as string | null) ?? null,
  };
}
