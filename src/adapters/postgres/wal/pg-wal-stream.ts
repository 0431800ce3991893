import { isUndefinedTable } from './wal-slot-table.ts';
import type { LogicalReplicationService } from 'pg-logical-replication';
import { errorSummary, ZerolossError } from '../../../core/errors.ts';
import type { Database } from '../../../ports/sql-executor.ts';
import type { WalCommit, WalRow, WalStream, WalStreamHandler, WalStreamSession } from '../../../ports/wal-stream.ts';
import { libraryAcknowledgeArgument, parseLsn } from './lsn.ts';
import { type PgoutputEvent, PgoutputDecoder } from './pgoutput-decoder.ts';

interface SlotRow {
  slot_name: string;
  plugin: string;
  active: boolean;
  confirmed_flush_lsn: string | null;
  server_version: number;
}

/** What the plugin's parse hands to the 'data' listener: a decoded message, or why one could not be. */
type ParsedMessage = PgoutputEvent | { tag: 'error'; error: Error } | undefined;

/** What `subscribe` takes; the library does not export its Plugin type from its entry point. */
type Plugin = Parameters<LogicalReplicationService['subscribe']>[0];

/** pgoutput's values in each type's send format (bytea as bytes, not hex; no timestamp formatting): PostgreSQL 14+. */
const BINARY_SINCE = 140000;

export interface PgWalStreamOptions {
  /** A connection string for the replication connection (the pool's connections cannot stream). */
  url: string;
  schema: string;
  slot: string;
  publication: string;
  /** Reads the slot's state before each start. */
  db: Database;
  slotInfo: string;
  /** Whether the slot's creation (and its hand-over of older rows) has committed; see wal-sql.ts. */
  slotCreationDone: string;
  /** The lock part of `slotCreationDone` alone, for a schema before migration 20. */
  slotCreationFree: string;
  /** The replication connection's application_name: a shard's reader shows as its relay instance. */
  applicationName?: string;
  /** Reads the server's WAL insert position (`readingFrom`); without it the position stays unknown. */
  currentLsn?: string;
}

/**
 * The slot read through pg-logical-replication 2.5.0 (pgoutput, protocol 1), with its three pitfalls
 * fenced off (docs/wal-relay.md): acknowledgements are never automatic and never on its timer
 * (`auto: false, timeoutSeconds: 0`: its timer confirms the last *received* position), each acknowledgement
 * passes `lsn − 1` because the library adds one, and every start asks for `0/0`, the slot's confirmed
 * position, never the library's remembered last received one.
 */
export class PgWalStream implements WalStream {
  readonly slot: string;
  readonly #options: PgWalStreamOptions;
  #readingFrom: string | undefined;
  /** Counts the opens, so that a position read for an earlier reading is never taken for a later one. */
  #opens = 0;

  constructor(options: PgWalStreamOptions) {
    this.#options = options;
    this.slot = options.slot;
  }

  /**
   * Where the current reading of the slot began: the server's WAL insert position, read once the reading
   * had the slot. A slot admits one reader, so every commit an earlier reading (of any process) received
   * ends at or before it, and a commit ending after it reached this reading only. Undefined from the start
   * of each open until that position is known, a moment after the reading started, and when it cannot be
   * read (the ledger then assumes nothing).
   */
  get readingFrom(): string | undefined {
    return this.#readingFrom;
  }

  async open(handler: WalStreamHandler): Promise<WalStreamSession> {
    const open = ++this.#opens;
    this.#readingFrom = undefined;
    const { rows } = await this.#options.db.query<SlotRow>(this.#options.slotInfo, [this.slot]);
    const slot = rows[0];
    if (!slot) {
      throw new ZerolossError(
        'ZL_INVALID_CONFIG',
        `replication slot ${this.slot} does not exist: create it once with \`zeroloss relay --mode wal --create-slot\``,
        { retryable: false, details: { slot: this.slot } },
      );
    }
    if (slot.active) throw busy(this.slot);
    // Asked after the slot was found: its creator takes the lock before creating it, so a slot seen here
    // with the lock free either has its hand-over committed (and recorded) or is the leftover of a creation
    // that died before it did. Both refusals are retryable: a standby waits until --create-slot is done.
    const creation = await this.#creation();
    if (!creation.done) {
      throw new ZerolossError('ZL_LOCK_BUSY', `replication slot ${this.slot} is being created: its older rows are being handed over`, {
        retryable: true,
        details: { slot: this.slot },
      });
    }
    if (!creation.recorded) {
      throw new ZerolossError(
        'ZL_LOCK_BUSY',
        `replication slot ${this.slot} was left by a --create-slot that stopped before handing the older rows over: ` +
          'run `zeroloss relay --mode wal --create-slot` again (it makes the slot anew)',
        { retryable: true, details: { slot: this.slot } },
      );
    }
    const { LogicalReplicationService } = (await import('./logical-replication-driver.ts')).logicalReplication;
    const service = new LogicalReplicationService(
      {
        connectionString: this.#options.url,
        ...(this.#options.applicationName === undefined ? {} : { application_name: this.#options.applicationName }),
      },
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
    );
    const plugin = leanPgoutputPlugin(this.#options.schema, this.#options.publication, Number(slot.server_version) >= BINARY_SINCE);
    const session = await new PgWalSession(service, handler, slot.confirmed_flush_lsn ?? undefined).start(plugin, this.slot);
    // Not awaited: the reading goes on meanwhile, its records looking at every row until the position is known.
    void this.#position().then((lsn) => {
      if (this.#opens === open) this.#readingFrom = lsn;
    });
    return session;
  }

  /** Read once the reading has the slot; a failure leaves it unknown (never fails a started reading). */
  async #position(): Promise<string | undefined> {
    if (this.#options.currentLsn === undefined) return undefined;
    try {
      return (await this.#options.db.query<{ lsn: string }>(this.#options.currentLsn)).rows[0]?.lsn;
    } catch {
      return undefined;
    }
  }

  async #creation(): Promise<{ done: boolean; recorded: boolean }> {
    try {
      const { rows } = await this.#options.db.query<{ done: boolean; recorded: boolean }>(this.#options.slotCreationDone, [this.slot]);
      return { done: rows[0]?.done === true, recorded: rows[0]?.recorded === true };
    } catch (error) {
      // A schema before migration 20 records no hand-over: the lock alone says, as it did then.
      if (!isUndefinedTable(error)) throw error;
      const { rows } = await this.#options.db.query<{ done: boolean }>(this.#options.slotCreationFree, [this.slot]);
      return { done: rows[0]?.done === true, recorded: true };
    }
  }
}

/**
 * The library's replication protocol with our decoder in place of its pgoutput parser: the service calls
 * `parse` on each XLogData payload and emits what it returns as 'data'. A message that cannot be decoded
 * becomes an error message, so the session ends (and replays from the confirmed position) instead of
 * throwing inside the connection's event handler.
 */
function leanPgoutputPlugin(schema: string, publication: string, binary: boolean): Plugin {
  const decoder = new PgoutputDecoder(schema);
  const options = [`proto_version '1'`, `publication_names '${publication}'`, ...(binary ? [`binary 'true'`] : [])].join(', ');
  const plugin = {
    name: 'pgoutput',
    options: {},
    parse(buffer: Buffer): ParsedMessage {
      try {
        return decoder.decode(buffer);
      } catch (error) {
        return { tag: 'error', error: error as Error };
      }
    },
    // Slot and publication names are checked identifiers (quoteIdent in postgresWal).
    start: (client: { query(sql: string): Promise<unknown> }, slot: string, lsn: string) =>
      client.query(`START_REPLICATION SLOT "${slot}" LOGICAL ${lsn} (${options})`),
  };
  return plugin as unknown as Plugin;
}

function busy(slot: string): ZerolossError {
  return new ZerolossError('ZL_LOCK_BUSY', `replication slot ${slot} is being read by another relay`, {
    retryable: true,
    details: { slot },
  });
}

/**
 * How often the session repeats its last confirmed position to the server on its own, as `pg_recvlogical
 * --status-interval` does. The server ends a reader it has not heard from for `wal_sender_timeout`, and
 * its keepalive requests wait unread in the socket while flow control holds it paused and batches are out:
 * a relay starved of CPU then saw every reading ended after 10 s before its first batch was confirmed,
 * and replayed the same backlog again and again (fault suite, relay-zombie at load 18-24).
 */
const STATUS_INTERVAL_MS = 1_000;

class PgWalSession implements WalStreamSession {
  readonly #service: LogicalReplicationService;
  #status: ReturnType<typeof setInterval> | undefined;
  readonly #handler: WalStreamHandler;
  /** What keepalives are answered with: the last acknowledged position (at start: the slot's confirmed one). */
  #acknowledged: string | undefined;
  #rows: WalRow[] = [];
  /** Between a BEGIN and its COMMIT: the transaction is only partly received. */
  #inTransaction = false;
  #closed = false;
  #ended = false;

  constructor(service: LogicalReplicationService, handler: WalStreamHandler, confirmed: string | undefined) {
    this.#service = service;
    this.#handler = handler;
    this.#acknowledged = confirmed;
  }

  async start(plugin: Plugin, slot: string): Promise<this> {
    const service = this.#service;
    service.on('error', () => {});
    service.on('data', (_lsn: string, message: ParsedMessage) => this.#onMessage(message));
    service.on('heartbeat', (lsn: string, _timestamp: number, shouldRespond: boolean) => this.#onKeepalive(lsn, shouldRespond));
    const started = new Promise<void>((resolve) => service.once('start', () => resolve()));
    // Resolves or rejects when the stream ends; before 'start' it is the refusal to start.
    const streaming = service.subscribe(plugin, slot, '0/0');
    const first = await Promise.race([
      started.then(() => undefined),
      streaming.then(
        () => new Error('stream ended at once'),
        (e) => e,
      ),
    ]);
    if (first !== undefined) {
      await service.destroy().catch(() => {});
      const text = errorSummary(first);
      if (/is active for PID/i.test(text)) throw busy(slot);
      throw new ZerolossError('ZL_STORE_UNAVAILABLE', `cannot read replication slot ${slot}: ${text}`, { retryable: true, cause: first });
    }
    streaming.then(
      () => this.#end(undefined),
      (error) => this.#end(error as Error),
    );
    this.#status = setInterval(() => {
      const acknowledged = this.#acknowledged;
      if (acknowledged !== undefined && !this.#ended) void service.acknowledge(libraryAcknowledgeArgument(acknowledged)).catch(() => {});
    }, STATUS_INTERVAL_MS);
    this.#status.unref();
    return this;
  }

  #onMessage(message: ParsedMessage): void {
    // After an undecodable message nothing more is handed over: a later commit would skip its rows.
    if (message === undefined || this.#ended) return;
    if (message.tag === 'begin') {
      this.#inTransaction = true;
      this.#rows = [];
    } else if (message.tag === 'insert') {
      // Handed over in parts: the rows of one large transaction then wait in the relay's queue, where flow
      // control pauses the socket, instead of all in memory here until its commit (the server has committed
      // it already: pgoutput sends a transaction only once it committed). A full part goes once a row
      // follows it, so the last rows always come with the commit and know its end: a transaction of exactly
      // N parts went as N parts and an empty commit, none of its rows knowing its end, and a replay listed
      // them again (insert-only mode) instead of finding them listed.
      if (this.#rows.length >= this.#handler.partRows) {
        const part: WalCommit = { endLsn: undefined, rows: this.#rows };
        this.#rows = [];
        this.#handler.commit(part);
      }
      this.#rows.push(message.row);
    } else if (message.tag === 'error') {
      this.#end(message.error);
      void this.#service.destroy().catch(() => {});
    } else if (message.tag === 'commit') {
      const endLsn = message.endLsn;
      if (!endLsn) return;
      // Each row knows its commit's end: the ledger looks up only rows of commits the slot may have recorded.
      for (const row of this.#rows) row.commitEnd = endLsn;
      const commit: WalCommit = { endLsn, rows: this.#rows };
      this.#rows = [];
      this.#inTransaction = false;
      this.#handler.commit(commit);
    }
  }

  /**
   * A keepalive carries the position up to which the server has decoded and sent the log. Once every
   * commit received is recorded and confirmed (and none is half received), nothing before that position
   * is left to send, so it is confirmed: the slot then moves on past other tables' writes while no outbox
   * row commits, instead of holding their WAL back and showing as lag (pg_recvlogical does the same).
   * Otherwise a keepalive that asks for an answer gets the last confirmed position.
   */
  #onKeepalive(lsn: string, shouldRespond: boolean): void {
    const acknowledged = this.#acknowledged;
    if (acknowledged === undefined) return;
    const idle = !this.#inTransaction && this.#handler.caughtUp();
    if (idle && parseLsn(lsn) > parseLsn(acknowledged)) {
      this.#acknowledged = lsn;
      void this.#service.acknowledge(libraryAcknowledgeArgument(lsn)).catch(() => {});
    } else if (shouldRespond) {
      void this.#service.acknowledge(libraryAcknowledgeArgument(acknowledged)).catch(() => {});
    }
  }

  #end(error: Error | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    clearInterval(this.#status);
    this.#handler.end(this.#closed ? undefined : (error ?? new Error('replication stream ended')));
  }

  async acknowledge(endLsn: string): Promise<void> {
    // Never backwards: a keepalive may have confirmed a later position already.
    if (this.#acknowledged !== undefined && parseLsn(endLsn) <= parseLsn(this.#acknowledged)) return;
    this.#acknowledged = endLsn;
    await this.#service.acknowledge(libraryAcknowledgeArgument(endLsn));
  }

  pause(): void {
    this.#socket()?.pause?.();
  }

  resume(): void {
    this.#socket()?.resume?.();
  }

  /** The library pauses this same socket for its own flow control; it has no public handle for it. */
  #socket(): { pause?: () => void; resume?: () => void } | undefined {
    return (this.#service as unknown as { _connection?: { stream?: { pause?: () => void; resume?: () => void } } })._connection?.stream;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#service.destroy().catch(() => {});
    this.#end(undefined);
  }
}
