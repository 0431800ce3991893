import { createHash } from 'node:crypto';
import { type Envelope, envelopeHeaders, HEADER } from '../../core/envelope.ts';
import { ZerolossError } from '../../core/errors.ts';
import { quoteIdent } from '../../core/identifier.ts';
import { DEFAULT_MAX_PAYLOAD_BYTES, encodeMessage, type MessageInput } from '../../core/message.ts';
import type { BacklogStats, ClaimedRow, FailedOutcome, MessageState, RelaySource, SentOutcome } from '../../ports/outbox-store.ts';
import type { BrokerPosition, OutboxCursor, OutboxRowView, ResendRow, ResendSelector } from '../../ports/operations-store.ts';
import type {
  ParkedSource,
  SourceMessageLookup,
  SourceReconcile,
  SourceRowView,
  UnbuiltRow,
  UnbuiltRows,
} from '../../ports/parked-source.ts';
import type { Database, SqlExecutor } from '../../ports/sql-executor.ts';
import { stateColumnSql } from './state-column-sql.ts';
import { PastHeldKeys } from './past-held-keys.ts';

export interface StateColumnSourceOptions<Row> {
  /** Stable name of this source; part of bookkeeping keys and default message ids. */
  name: string;
  /** Business table and its columns. The table must exist; names are validated and quoted. */
  table: string;
  tableSchema?: string;
  idColumn: string;
  stateColumn: string;
  modifiedColumn: string;
  /** The row's creation time: sent as the message's createdAt. Omitted, createdAt is the time of the first claim. */
  createdColumn?: string;
  /** Further columns `toMessage` reads; `verify()` checks they exist, so a typo fails at start, not per row. */
  columns?: readonly string[];
  /** Column holding the message key: rows of one key are sent in id order. Omit for no ordering. */
  keyColumn?: string;
  /** Builds the message from a row. Called once per row: the bytes are stored and resent unchanged. */
  toMessage: (row: Row) => MessageInput & { id?: string };
  /** zeroloss's own schema (bookkeeping tables). */
  schema?: string;
  /**
   * Producer id of this source's messages (zl-producer-id), which names their per-key sequence (zl-seq,
   * gapless from 1 per (producer id, message key), shared with outbox messages of the same producer id).
   * Default: the source's name.
   */
  producerId?: string;
  /** Value written to the state column when a row is parked; default 3. `null` keeps it at 2. */
  parkedState?: number | null;
  holdKeyOnParked?: boolean;
  maxPayloadBytes?: number;
}

/**
 * Relays a business table that carries its own send-state column (P1, second shape): 0 pending,
 * 1 sent, 2 failed, 3 parked. Same leases, backoff, parking and per-key order as the outbox table.
 */
export class StateColumnSource<Row = Record<string, unknown>> implements RelaySource, ParkedSource, SourceMessageLookup, SourceReconcile {
  readonly name: string;
  readonly wakeChannel: string;
  /** Names the per-key sequence of this source's messages: the declared producer id, else the source's name. */
  readonly producerId: string;
  readonly #db: Database;
  readonly #options: StateColumnSourceOptions<Row>;
  readonly #sql: ReturnType<typeof stateColumnSql>;
  readonly #pastHeldKeys = new PastHeldKeys();
  readonly #tableName: string;
  #verified = false;

  constructor(db: Database, options: StateColumnSourceOptions<Row>) {
    this.#db = db;
    this.#options = options;
    this.name = options.name;
    this.producerId = options.producerId ?? options.name;
    if (!/^[a-z0-9_.:-]{1,100}$/.test(options.name)) {
      throw new ZerolossError(
        'ZL_INVALID_CONFIG',
        `state-column source name ${JSON.stringify(options.name)} must be 1-100 of [a-z0-9_.:-]`,
      );
    }
    const schema = options.schema ?? 'zeroloss';
    this.#tableName = `${options.tableSchema ?? 'public'}.${options.table}`;
    const parked = options.parkedState === undefined ? 3 : options.parkedState;
    if (parked !== null && (!Number.isInteger(parked) || [0, 1, 2].includes(parked))) {
      throw new ZerolossError('ZL_INVALID_CONFIG', 'parkedState must be an integer other than 0, 1, 2, or null');
    }
    this.wakeChannel = `${schema}_source_${options.name.replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
    this.#sql = stateColumnSql({
      z: quoteIdent(schema, 'schema'),
      table: `${quoteIdent(options.tableSchema ?? 'public', 'schema')}.${quoteIdent(options.table, 'table')}`,
      id: quoteIdent(options.idColumn, 'column'),
      state: quoteIdent(options.stateColumn, 'column'),
      modified: quoteIdent(options.modifiedColumn, 'column'),
      created: options.createdColumn === undefined ? undefined : quoteIdent(options.createdColumn, 'column'),
      key: options.keyColumn === undefined ? undefined : quoteIdent(options.keyColumn, 'column'),
      parkedState: parked ?? undefined,
      holdKeyOnParked: options.holdKeyOnParked ?? true,
    });
  }

  /** Call inside the business transaction that wrote the row, so a relay wakes when it commits. */
  async notify(tx: SqlExecutor): Promise<void> {
    await tx.query('select pg_notify($1, $2)', [this.wakeChannel, '']);
  }

  /** Checks that the declared table and columns exist; a typed error names what is missing. */
  async verify(): Promise<void> {
    if (this.#verified) return;
    const o = this.#options;
    const { rows } = await this.#db.query<{ column_name: string }>(
      'select column_name from information_schema.columns where table_schema = $1 and table_name = $2',
      [o.tableSchema ?? 'public', o.table],
    );
    if (rows.length === 0) {
      throw new ZerolossError('ZL_UNKNOWN_TABLE', `state-column source ${o.name}: table ${this.#tableName} does not exist`);
    }
    const have = new Set(rows.map((r) => r.column_name));
    for (const column of [o.idColumn, o.stateColumn, o.modifiedColumn, o.keyColumn, o.createdColumn, ...(o.columns ?? [])]) {
      if (column !== undefined && !have.has(column)) {
        throw new ZerolossError('ZL_UNKNOWN_TABLE', `state-column source ${o.name}: column ${column} not in ${this.#tableName}`);
      }
    }
    this.#verified = true;
  }

  async claim(owner: string, limit: number, leaseMs: number): Promise<ClaimedRow[]> {
    await this.verify();
    // Two statements in one transaction: the decision must run on a snapshot taken after the row locks
    // are held (see stateColumnSql). The ids go back in the driver's own form of the id column. Rows
    // claimed for the first time get their message built in the same transaction, so its sequence number
    // is drawn while the claim holds the row, and rolled back with it.
    // Rows were locked but none claimed: the window may be all rows of held keys (stateColumnSql, `lockPastHeldKeys`).
    const { claimed, broken } = await this.#pastHeldKeys.claim(
      await this.#claimLocked(this.#sql.lock, owner, limit, leaseMs),
      (c) => c.claimed.length > 0 || c.broken.length > 0,
      () => this.#claimLocked(this.#sql.lockPastHeldKeys, owner, limit, leaseMs),
      (c) => c.locked > 0,
    );
    if (broken.length > 0) await this.markFailed(owner, broken);
    return claimed;
  }

  async #claimLocked(
    lockSql: string,
    owner: string,
    limit: number,
    leaseMs: number,
  ): Promise<{ claimed: ClaimedRow[]; broken: FailedOutcome[]; locked: number }> {
    const refused = new Error('a claimable row changed under the claim');
    let locked = 0;
    const { claimed, broken } = await this.#db
      .transaction(async (tx) => {
        const { rows: lockedIds } = await tx.query<{ row_id: unknown }>(lockSql, [this.name, limit]);
        locked = lockedIds.length;
        if (lockedIds.length === 0) return { claimed: [], broken: [] };
        const result = await tx.query<ClaimRow<Row>>(this.#sql.claim, [this.name, owner, lockedIds.map((r) => r.row_id), leaseMs]);
        // A refused row may be an earlier row of a claimed row's key: claim nothing this round instead.
        if (result.rows.some((r) => Number(r.zl_refused) > 0)) throw refused;
        return this.#build(tx, result.rows);
      })
      .catch((error: unknown) => {
        if (error === refused) return { claimed: [], broken: [] };
        throw error;
      });
    return { claimed, broken, locked };
  }

  /**
   * The claimed rows as records: a row claimed before resends what was stored then (topic, key, bytes);
   * a new one is built by the mapping and stored with its sequence number and its topic after divert rules.
   * A row the mapping cannot turn into a message comes back in `broken`, to be parked with the reason.
   */
  async #build(tx: SqlExecutor, rows: Array<ClaimRow<Row>>): Promise<{ claimed: ClaimedRow[]; broken: FailedOutcome[] }> {
    const claimed: ClaimedRow[] = [];
    const fresh: Array<{
      ref: string;
      id: string;
      headers: Record<string, string>;
      payload: Buffer;
      topic: string;
      key: string;
      type: string;
    }> = [];
    const broken: FailedOutcome[] = [];
    // Keys (the key column's value) of rows this claim could not build: their later rows in it (id order)
    // are given back unbuilt, and the parked row holds them from then on. They went out ahead of it.
    const keyColumn = this.#options.keyColumn;
    const brokenKeys = new Set<string>();
    const keyOf = (r: ClaimRow<Row>) =>
      keyColumn === undefined ? undefined : JSON.stringify((r.row as Record<string, unknown>)[keyColumn]);
    for (const r of rows) {
      let record: ClaimedRow['record'];
      let messageId = r.zl_message_id;
      const key = this.#options.holdKeyOnParked === false ? undefined : keyOf(r);
      if (key !== undefined && brokenKeys.has(key)) {
        broken.push({ ref: r.zl_ref, error: '', action: 'release', delayMs: 0, charge: false });
        continue;
      }
      try {
        if (messageId !== null && r.zl_headers !== null && r.zl_payload !== null) {
          // Rows built before migration 012 kept no topic or key: the mapping gives them, as it did then.
          const mapped = r.zl_topic === null || r.zl_key === null ? this.#options.toMessage(r.row) : undefined;
          record = {
            topic: r.zl_topic ?? mapped?.topic ?? '',
            key: r.zl_key ?? mapped?.key ?? '',
            headers: r.zl_headers,
            value: Buffer.from(r.zl_payload),
          };
        } else {
          const message = this.#options.toMessage(r.row);
          const encoded = encodeMessage(message, this.#options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES);
          messageId = message.id ?? stableId(this.name, r.zl_ref);
          const envelope: Envelope = {
            id: messageId,
            traceId: message.traceId ?? messageId,
            type: message.type,
            version: message.version ?? 1,
            key: message.key,
            producerId: this.producerId,
            seq: 0, // drawn by storeEncoded
            createdAt: createdAt(r.row, this.#options.createdColumn),
            headers: message.headers ?? {},
          };
          const headers = envelopeHeaders(envelope, encoded.contentType);
          // createdAt is the row's creation time, perhaps long before this first claim: the consumer judges
          // whether its inbox can still remember the message by when it was built.
          if (this.#options.createdColumn !== undefined) headers[HEADER.builtAt] = new Date().toISOString();
          fresh.push({
            ref: r.zl_ref,
            id: messageId,
            headers,
            payload: encoded.bytes,
            topic: message.topic,
            key: message.key,
            type: message.type,
          });
          record = { topic: message.topic, key: message.key, headers, value: encoded.bytes };
        }
      } catch (error) {
        // A row the mapping cannot turn into a message is parked with the reason, never retried blindly.
        if (key !== undefined) brokenKeys.add(key);
        broken.push({
          ref: r.zl_ref,
          error: `row cannot be encoded: ${(error as Error).message}`,
          action: 'park',
          delayMs: 0,
          charge: true,
        });
        continue;
      }
      claimed.push({
        ref: r.zl_ref,
        messageId,
        attempt: Number(r.zl_attempts),
        state: Number(r.zl_state) as MessageState,
        // Only a row built at an earlier claim can have been sent: its stored message id is looked for.
        ...(r.zl_prev_lease_until_ms === null || r.zl_message_id === null
          ? {}
          : { previousLeaseUntilMs: Number(r.zl_prev_lease_until_ms) }),
        record,
      });
    }
    if (fresh.length > 0) {
      const { rows: built } = await tx.query<{ row_id: string; topic: string; headers: Record<string, string> }>(this.#sql.storeEncoded, [
        this.name,
        fresh.map((f) => f.ref),
        fresh.map((f) => f.id),
        fresh.map((f) => JSON.stringify(f.headers)),
        fresh.map((f) => f.payload),
        fresh.map((f) => f.topic),
        fresh.map((f) => f.key),
        fresh.map((f) => f.type),
        this.producerId,
      ]);
      const byRef = new Map(built.map((b) => [b.row_id, b]));
      for (const c of claimed) {
        const b = byRef.get(c.ref);
        if (b) c.record = { ...c.record, topic: b.topic, headers: b.headers };
      }
    }
    return { claimed, broken };
  }

  async markSent(owner: string, sent: SentOutcome[]): Promise<void> {
    if (sent.length === 0) return;
    await this.#db.query(this.#sql.markSent, [
      this.name,
      sent.map((s) => s.ref),
      sent.map((s) => s.partition ?? null),
      sent.map((s) => (s.offset === undefined ? null : s.offset.toString())),
      owner,
    ]);
  }

  async markFailed(owner: string, failed: FailedOutcome[]): Promise<string[]> {
    if (failed.length === 0) return [];
    const { rows } = await this.#db.query<{ message_id: string | null; to_state: number }>(this.#sql.markFailed, [
      this.name,
      failed.map((f) => f.ref),
      failed.map((f) => (f.action === 'park' ? 3 : 2)),
      failed.map((f) => (f.action === 'release' ? null : f.error)),
      failed.map((f) => f.delayMs),
      failed.map((f) => f.charge && f.action !== 'release'),
      owner,
      failed.map((f) => f.action === 'release'),
    ]);
    return rows.filter((r) => Number(r.to_state) === 3).map((r) => r.message_id ?? '');
  }

  /** Parked rows (the relay gave up; no person discarded them yet), in id order. */
  async parkedRows(limit: number): Promise<SourceRowView[]> {
    await this.verify();
    const { rows } = await this.#db.query<{
      row_id: string;
      message_id: string | null;
      attempts: number;
      last_error: string | null;
      type: string | null;
      modified_at: Date;
      key: string | null;
      state: number;
    }>(this.#sql.parkedRows, [this.name, limit]);
    return rows.map((r) => ({
      source: this.name,
      rowId: r.row_id,
      messageId: r.message_id,
      key: r.key,
      type: r.type,
      state: Number(r.state),
      attempts: Number(r.attempts),
      lastError: r.last_error,
      modifiedAt: new Date(r.modified_at),
    }));
  }

  /**
   * Parked rows back to pending with a full set of attempts, and relays woken. `ids` are message ids or
   * `<source>:<row id>`; returns the ids it released, as given.
   */
  async release(ids: string[], actor: string, reason: string | undefined): Promise<string[]> {
    await this.verify();
    const done = await this.#intervene(this.#sql.release, ids, actor, reason ?? null);
    if (done.length > 0) await this.#db.query('select pg_notify($1, $2)', [this.wakeChannel, '']);
    return done;
  }

  /** Gives parked rows up for good; the business row stays as it is (see the discard statement). */
  async discard(ids: string[], actor: string, reason: string): Promise<string[]> {
    await this.verify();
    return this.#intervene(this.#sql.discard, ids, actor, reason);
  }

  async #intervene(statement: string, ids: string[], actor: string, reason: string | null): Promise<string[]> {
    if (ids.length === 0) return [];
    const { rows } = await this.#db.query<{ row_id: string; message_id: string | null }>(statement, [this.name, ids, actor, reason]);
    const named = new Set(rows.flatMap((r) => [r.message_id, `${this.name}:${r.row_id}`]));
    return ids.filter((id) => named.has(id));
  }

  /**
   * The message `messageId` of this source in the outbox row's shape, or undefined: what the relay stored
   * at the first claim (topic after divert rules, key, sequence, envelope) and the row's send state.
   */
  async messageRow(messageId: string): Promise<OutboxRowView | undefined> {
    await this.verify();
    const { rows } = await this.#db.query<BookRow<Row>>(this.#sql.messageRow, [this.name, messageId]);
    return rows[0] && this.#view(rows[0]);
  }

  /**
   * Rows of a window (on the creation-time column, else the modified time) that have a message, in id order
   * after `after` (its seqId is the row id), as reconcile reads them. A topic filter applies the topic
   * stored at the first claim.
   */
  async outboxWindow(
    window: { from: Date; to: Date },
    topics: string[] | undefined,
    after: OutboxCursor | undefined,
    limit: number,
  ): Promise<Array<OutboxRowView & { cursor: OutboxCursor }>> {
    await this.verify();
    let from = after?.seqId ?? '0';
    for (;;) {
      const { rows } = await this.#db.query<BookRow<Row>>(this.#sql.windowRows, [this.name, window.from, window.to, from, limit]);
      if (rows.length === 0) return [];
      // A row whose topic is unknown (built before migration 012, its mapping failing now) cannot be looked
      // for on the broker: unbuiltRows names it instead.
      const out = rows
        .map((r) => this.#view(r))
        .filter((v) => v.topic !== '' && (!topics || topics.length === 0 || topics.includes(v.topic)))
        .map((v) => ({ ...v, cursor: { at: v.createdAt.toISOString(), seqId: v.seqId } }));
      // A page the topic filter emptied is not the end: the caller stops at a short page.
      if (out.length > 0 || rows.length < limit) return out;
      from = rows[rows.length - 1]?.row_id ?? from;
    }
  }

  /**
   * Rows of the window reconcile cannot check by message id, whatever their topic (they have none yet):
   * never claimed, parked unbuilt, or built before migration 012 with a mapping that fails now.
   */
  async unbuiltRows(window: { from: Date; to: Date }, stuckAfterMs: number, limit: number): Promise<UnbuiltRows> {
    await this.verify();
    const { rows } = await this.#db.query<{
      row_id: string;
      state: number;
      parked: boolean;
      last_error: string | null;
      age_ms: number;
      total: number;
      stuck: number;
    }>(this.#sql.unbuiltRows, [this.name, window.from, window.to, stuckAfterMs, limit]);
    const found: UnbuiltRow[] = rows.map((r) => ({
      id: `${this.name}:${r.row_id}`,
      rowId: r.row_id,
      messageId: null,
      kind: r.parked ? 'unencodable' : 'unclaimed',
      state: Number(r.state),
      ageMs: Math.max(0, Number(r.age_ms)),
      error: r.last_error,
      stuck: r.parked || Number(r.age_ms) > stuckAfterMs,
    }));
    let count = Number(rows[0]?.total ?? 0);
    let stuck = Number(rows[0]?.stuck ?? 0);
    const unmappable: UnbuiltRow[] = [];
    for (let after = '0'; ; ) {
      const { rows: legacy } = await this.#db.query<{ row: Row; row_id: string; message_id: string; state: number; age_ms: number }>(
        this.#sql.legacyRows,
        [this.name, window.from, window.to, after, 1_000],
      );
      for (const r of legacy) {
        try {
          this.#options.toMessage(r.row);
        } catch (error) {
          unmappable.push({
            id: r.message_id,
            rowId: r.row_id,
            messageId: r.message_id,
            kind: 'unmappable',
            state: Number(r.state),
            ageMs: Math.max(0, Number(r.age_ms)),
            error: `the mapping fails: ${(error as Error).message}`,
            stuck: true,
          });
        }
      }
      if (legacy.length < 1_000) break;
      after = legacy[legacy.length - 1]?.row_id ?? after;
    }
    count += unmappable.length;
    stuck += unmappable.length;
    const all = [...found, ...unmappable].sort((a, b) => compareIds(a.rowId, b.rowId)).slice(0, limit);
    return { count, stuck, rows: all };
  }

  /** Ack-vs-state repair: rows the broker holds become sent without a resend; returns their message ids. */
  async markSentFromBroker(found: BrokerPosition[], actor: string): Promise<string[]> {
    if (found.length === 0) return [];
    const { rows } = await this.#db.query<{ message_id: string }>(this.#sql.markSentFromBroker, [
      this.name,
      found.map((f) => f.messageId),
      found.map((f) => f.partition),
      found.map((f) => f.offset.toString()),
      found.map((f) => f.timestampMs),
      actor,
    ]);
    return rows.map((r) => r.message_id);
  }

  /** A bookkeeping row in the outbox row's shape: topic and key by the mapping, the rest as stored. */
  #view(r: BookRow<Row>): OutboxRowView {
    let mapped: { topic: string; key: string } | undefined;
    if (r.topic === null || r.msg_key === null) {
      try {
        mapped = this.#options.toMessage(r.row);
      } catch {
        mapped = undefined;
      }
    }
    const h = r.headers ?? {};
    const state = Number(r.state);
    return {
      seqId: r.row_id,
      messageId: r.message_id,
      topic: r.topic ?? mapped?.topic ?? '',
      key: r.msg_key ?? mapped?.key ?? '',
      type: h['zl-type'] ?? '',
      traceId: h['zl-trace-id'] ?? r.message_id,
      producerId: h['zl-producer-id'] ?? this.name,
      keySeq: Number(r.key_seq ?? h['zl-seq'] ?? 0),
      // The relay's view: a parked row is parked whatever value the business table keeps for it.
      state: (r.parked ? 3 : state === 1 ? 1 : state === 0 ? 0 : 2) as OutboxRowView['state'],
      attempts: Number(r.attempts),
      lastError: r.last_error,
      createdAt: new Date(h['zl-created-at'] ?? r.modified_at),
      modifiedAt: new Date(r.modified_at),
      nextAttemptAt: new Date(r.next_attempt_at),
      leaseOwner: r.lease_owner,
      leaseUntil: r.lease_until === null ? null : new Date(r.lease_until),
      sentAt: state === 1 ? new Date(r.modified_at) : null,
      sentPartition: r.sent_partition,
      sentOffset: r.sent_offset === null ? null : BigInt(r.sent_offset),
      // State-column sources are polled, never streamed.
      inStream: false,
    };
  }

  /**
   * Sent rows to re-publish, byte for byte as first encoded, in id order after the row `afterSeqId`: by
   * message id, or by the window on the creation-time column (the modified time when none is declared).
   * A topic filter applies the topic stored at the first claim.
   */
  async resendRows(selector: ResendSelector, afterSeqId: string, limit: number): Promise<ResendRow[]> {
    await this.verify();
    const ids = 'ids' in selector ? selector.ids : null;
    const window = 'window' in selector ? selector.window : { from: new Date(0), to: new Date(0) };
    let after = afterSeqId;
    for (;;) {
      const { rows } = await this.#db.query<{
        row: Row;
        row_id: string;
        message_id: string;
        headers: Record<string, string>;
        payload: Uint8Array;
        topic: string | null;
        msg_key: string | null;
        state: number;
      }>(this.#sql.resendRows, [this.name, ids, window.from, window.to, after, limit]);
      if (rows.length === 0) return [];
      const out: ResendRow[] = [];
      for (const r of rows) {
        let mapped: { topic: string; key: string };
        try {
          mapped = r.topic !== null && r.msg_key !== null ? { topic: r.topic, key: r.msg_key } : this.#options.toMessage(r.row);
        } catch {
          continue;
        }
        if (selector.topics && selector.topics.length > 0 && !selector.topics.includes(mapped.topic)) continue;
        const state = Number(r.state);
        out.push({
          seqId: r.row_id,
          messageId: r.message_id,
          topic: mapped.topic,
          key: mapped.key,
          headers: r.headers,
          payload: Buffer.from(r.payload),
          state: (state === 1 ? 1 : state === 0 ? 0 : 2) as ResendRow['state'],
        });
      }
      // A page the topic filter emptied is not the end: the caller stops at an empty answer.
      if (out.length > 0) return out;
      after = rows[rows.length - 1]?.row_id ?? after;
    }
  }

  async recordResent(
    sent: Array<{ messageId: string; partition: number | null; offset: bigint | null }>,
    actor: string,
    reason: string,
  ): Promise<string[]> {
    if (sent.length === 0) return [];
    const { rows } = await this.#db.query<{ message_id: string }>(this.#sql.recordResent, [
      this.name,
      sent.map((s) => s.messageId),
      sent.map((s) => s.partition),
      sent.map((s) => (s.offset === null ? null : s.offset.toString())),
      actor,
      reason,
    ]);
    return rows.map((r) => r.message_id);
  }

  /** Unsent, failed and parked rows; `stuck` counts unsent rows created more than `stuckAfterMs` ago. */
  async backlog(stuckAfterMs = 300_000): Promise<BacklogStats & { stuck: number }> {
    await this.verify();
    const { rows } = await this.#db.query<{
      pending: number;
      stuck: number;
      failed: number;
      parked: number;
      oldest_ms: number;
      next_due_ms: number | null;
    }>(this.#sql.backlog, [this.name, stuckAfterMs]);
    const r = rows[0];
    return {
      pending: Number(r?.pending ?? 0),
      failed: Number(r?.failed ?? 0),
      parked: Number(r?.parked ?? 0),
      stuck: Number(r?.stuck ?? 0),
      oldestUnsentAgeMs: Math.max(0, Number(r?.oldest_ms ?? 0)),
      nextDueInMs: r?.next_due_ms === null || r?.next_due_ms === undefined ? undefined : Math.max(0, Number(r.next_due_ms)),
    };
  }
}

/** A row the claim statement returns: the business row and its bookkeeping. */
interface ClaimRow<Row> {
  row: Row;
  zl_ref: string;
  zl_attempts: number;
  zl_message_id: string | null;
  zl_headers: Record<string, string> | null;
  zl_payload: Uint8Array | null;
  zl_topic: string | null;
  zl_key: string | null;
  zl_state: number;
  zl_refused: number | string;
  /** When an earlier claim that recorded no outcome had its lease end (ms since the epoch); null otherwise. */
  zl_prev_lease_until_ms: number | null;
}

/** A source_row joined with its business row, as messageRow and windowRows read it. */
interface BookRow<Row> {
  row: Row;
  row_id: string;
  message_id: string;
  attempts: number;
  last_error: string | null;
  next_attempt_at: Date;
  lease_owner: string | null;
  lease_until: Date | null;
  parked: boolean;
  headers: Record<string, string> | null;
  sent_partition: number | null;
  sent_offset: string | null;
  /** As built at the first claim (migration 012); null for rows built before it. */
  topic: string | null;
  msg_key: string | null;
  key_seq: string | null;
  state: number;
  modified_at: Date;
}

/** The row's own creation time when the source names its column and the value is a time; else now. */
function createdAt(row: unknown, column: string | undefined): string {
  const value = column === undefined ? undefined : (row as Record<string, unknown>)[column];
  const time = typeof value === 'string' || typeof value === 'number' ? new Date(value) : undefined;
  return time && !Number.isNaN(time.getTime()) ? time.toISOString() : new Date().toISOString();
}

/** Row ids in the id column's order: numeric ids as numbers (9 < 10), any other id as text. */
function compareIds(a: string, b: string): number {
  if (/^-?\d+$/.test(a) && /^-?\d+$/.test(b)) {
    const d = BigInt(a) - BigInt(b);
    return d < 0n ? -1 : d > 0n ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A row's message id when the mapping gives none: stable across attempts, 63 bits, decimal like Snowflake ids. */
export function stableId(source: string, rowId: string): string {
  const digest = createHash('sha256').update(`${source}\u0000${rowId}`).digest();
  return (digest.readBigUInt64BE(0) & 0x7fffffffffffffffn).toString();
}
