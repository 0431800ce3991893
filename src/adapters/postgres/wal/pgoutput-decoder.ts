import { ZerolossError } from '../../../core/errors.ts';
import type { WalRow } from '../../../ports/wal-stream.ts';

/**
 * What the WAL relay needs from one pgoutput message (protocol 1). Everything else (origin, type,
 * truncate, logical messages, other tables' rows) decodes to `undefined`.
 */
export type PgoutputEvent = { tag: 'begin' } | { tag: 'insert'; row: WalRow } | { tag: 'commit'; endLsn: string | null };

/**
 * The outbox columns a row is sent from, and the state it was inserted with (1 in the insert-only mode: its
 * send is recorded in a batch row, docs/wal-relay.md); the other 15 are skipped by their length, never decoded.
 */
const NEEDED = ['seq_id', 'message_id', 'topic', 'msg_key', 'headers', 'payload', 'state'] as const;
const SEQ_ID = 0;
const MESSAGE_ID = 1;
const TOPIC = 2;
const MSG_KEY = 3;
const HEADERS = 4;
const PAYLOAD = 5;
const STATE = 6;
/** The columns a row cannot be sent without (state may be missing from a table of the old shape: read as 0). */
const REQUIRED = STATE;

/** Where each needed column sits in this relation's tuples (by name: a table may order its columns any way). */
interface Layout {
  /** Per column position: its index in NEEDED, or -1. */
  slots: Int8Array;
}

const KIND_NULL = 0x6e; // 'n'
const KIND_UNCHANGED = 0x75; // 'u': an unchanged TOASTed value (updates only)
const KIND_TEXT = 0x74; // 't'
const KIND_BINARY = 0x62; // 'b'

/**
 * A decoder of pgoutput's binary messages that reads only the outbox's inserts, and of them only the six
 * columns a record is built from and the row's state (docs/wal-relay.md, "Decoding"). pg-logical-replication's own parser turns
 * all 22 columns of every row into JS values (timestamps into Dates, jsonb and bytea through node-postgres's
 * type parsers): most of the relay's CPU per row in the profile of the `relay` benchmark.
 *
 * Values arrive as text ('t') or, when the stream asked for `binary 'true'` (PostgreSQL 14+), in each
 * type's send format ('b'): int8 as 8 bytes, jsonb as a version byte then its text, bytea as its bytes.
 * A value's bytes are copied out of `buffer`: node-postgres reuses its receive buffer for later data, so a
 * view kept in a queued row could change under it.
 */
export class PgoutputDecoder {
  readonly #schema: string;
  readonly #table: string;
  /** Per relation id: the outbox's layout, or null for a table the relay ignores. */
  readonly #relations = new Map<number, Layout | null>();
  /** Scratch: per needed column, its value's start, end and kind in the tuple being read. */
  readonly #start = new Int32Array(NEEDED.length);
  readonly #end = new Int32Array(NEEDED.length);
  readonly #kind = new Uint8Array(NEEDED.length);

  constructor(schema: string, table = 'outbox') {
    this.#schema = schema;
    this.#table = table;
  }

  decode(buffer: Buffer): PgoutputEvent | undefined {
    switch (buffer[0]) {
      case 0x42: // 'B'
        return { tag: 'begin' };
      case 0x49: // 'I'
        return this.#insert(buffer);
      case 0x43: // 'C': flags (1), commit LSN (8), end LSN (8), timestamp (8)
        return { tag: 'commit', endLsn: lsnAt(buffer, 10) };
      case 0x52: // 'R'
        this.#relation(buffer);
        return undefined;
      default:
        return undefined;
    }
  }

  /** 'R': id (4), namespace, name, replica identity (1), column count (2), then per column flags (1), name, type (4), typmod (4). */
  #relation(buffer: Buffer): void {
    const id = buffer.readUInt32BE(1);
    let p = 5;
    const [schema, afterSchema] = cstring(buffer, p);
    const [name, afterName] = cstring(buffer, afterSchema);
    p = afterName + 1; // the replica identity
    const columns = buffer.readUInt16BE(p);
    p += 2;
    if (schema !== this.#schema || name !== this.#table) {
      this.#relations.set(id, null);
      return;
    }
    const slots = new Int8Array(columns).fill(-1);
    const found = new Array<boolean>(NEEDED.length).fill(false);
    for (let i = 0; i < columns; i++) {
      const [column, afterColumn] = cstring(buffer, p + 1);
      p = afterColumn + 8; // type oid and typmod
      const slot = (NEEDED as readonly string[]).indexOf(column);
      if (slot >= 0) {
        slots[i] = slot;
        found[slot] = true;
      }
    }
    const missing = NEEDED.filter((_, i) => i < REQUIRED && !found[i]);
    if (missing.length > 0) {
      throw new ZerolossError('ZL_INVALID_CONFIG', `${schema}.${name} in the replication stream lacks column(s) ${missing.join(', ')}`, {
        retryable: false,
        details: { relation: `${schema}.${name}`, missing },
      });
    }
    this.#relations.set(id, { slots });
  }

  /** 'I': relation id (4), 'N', column count (2), then per column a kind byte and, for 't'/'b', a length (4) and the bytes. */
  #insert(buffer: Buffer): PgoutputEvent | undefined {
    const id = buffer.readUInt32BE(1);
    const layout = this.#relations.get(id);
    if (layout === undefined) throw protocolError(`an insert into relation ${id} came before its relation message`);
    if (layout === null) return undefined;
    const { slots } = layout;
    const start = this.#start;
    const end = this.#end;
    const kinds = this.#kind;
    kinds.fill(KIND_NULL);
    const columns = buffer.readUInt16BE(6);
    if (columns > slots.length) throw protocolError(`an insert of ${columns} columns into a relation of ${slots.length}`);
    let p = 8;
    for (let i = 0; i < columns; i++) {
      const kind = buffer[p++] as number;
      if (kind === KIND_TEXT || kind === KIND_BINARY) {
        const length = buffer.readUInt32BE(p);
        p += 4;
        const slot = slots[i] as number;
        if (slot >= 0) {
          kinds[slot] = kind;
          start[slot] = p;
          end[slot] = p + length;
        }
        p += length;
      } else if (kind === KIND_UNCHANGED) {
        if ((slots[i] as number) >= 0) throw protocolError('an insert with an unchanged TOAST value');
      } else if (kind !== KIND_NULL) {
        throw protocolError(`unknown tuple value kind 0x${kind.toString(16)}`);
      }
    }
    if (p !== buffer.length) throw protocolError(`an insert message of ${buffer.length} bytes holds ${p}`);
    for (let slot = 0; slot < REQUIRED; slot++) {
      if (kinds[slot] === KIND_NULL) throw protocolError(`outbox column ${NEEDED[slot]} is null`);
    }
    const headersStart = kinds[HEADERS] === KIND_BINARY ? jsonbBody(buffer, start[HEADERS] as number) : (start[HEADERS] as number);
    return {
      tag: 'insert',
      row: {
        ref: kinds[SEQ_ID] === KIND_BINARY ? int8(buffer, start[SEQ_ID] as number) : text(buffer, start, end, SEQ_ID),
        messageId: text(buffer, start, end, MESSAGE_ID),
        insertOnly: insertedState(buffer, kinds[STATE] as number, start, end) === 1,
        commitEnd: undefined,
        record: {
          topic: text(buffer, start, end, TOPIC),
          key: text(buffer, start, end, MSG_KEY),
          headers: JSON.parse(buffer.toString('utf8', headersStart, end[HEADERS])) as Record<string, string>,
          value:
            kinds[PAYLOAD] === KIND_BINARY
              ? copy(buffer, start[PAYLOAD] as number, end[PAYLOAD] as number)
              : byteaText(buffer, start[PAYLOAD] as number, end[PAYLOAD] as number),
        },
      },
    };
  }
}

/** The smallint state column: int2send's 2 bytes, or its text; 0 when the table has no such column. */
function insertedState(buffer: Buffer, kind: number, start: Int32Array, end: Int32Array): number {
  if (kind === KIND_BINARY) return buffer.readInt16BE(start[STATE] as number);
  if (kind === KIND_TEXT) return Number(text(buffer, start, end, STATE));
  return 0;
}

function text(buffer: Buffer, start: Int32Array, end: Int32Array, slot: number): string {
  return buffer.toString('utf8', start[slot], end[slot]);
}

function copy(buffer: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start);
  buffer.copy(out, 0, start, end);
  return out;
}

/** int8send: a big-endian 64-bit integer, as its decimal text. */
function int8(buffer: Buffer, at: number): string {
  return buffer.readBigInt64BE(at).toString();
}

/** jsonb_send: a version byte (1), then the JSON text. */
function jsonbBody(buffer: Buffer, at: number): number {
  if (buffer[at] !== 1) throw protocolError(`jsonb binary format version ${buffer[at]}`);
  return at + 1;
}

/** byteaout's text: `\x` and hex (bytea_output = hex, the default), or the escape format. */
function byteaText(buffer: Buffer, start: number, end: number): Buffer {
  if (buffer[start] === 0x5c && buffer[start + 1] === 0x78) return Buffer.from(buffer.toString('latin1', start + 2, end), 'hex');
  const out = Buffer.allocUnsafe(end - start);
  let n = 0;
  for (let p = start; p < end; ) {
    const c = buffer[p] as number;
    if (c !== 0x5c) {
      out[n++] = c;
      p++;
    } else if (buffer[p + 1] === 0x5c) {
      out[n++] = 0x5c;
      p += 2;
    } else {
      out[n++] = ((buffer[p + 1] as number) - 0x30) * 64 + ((buffer[p + 2] as number) - 0x30) * 8 + ((buffer[p + 3] as number) - 0x30);
      p += 4;
    }
  }
  return out.subarray(0, n);
}

/** A NUL-terminated string at `at`, and the position after its NUL. */
function cstring(buffer: Buffer, at: number): [string, number] {
  const nul = buffer.indexOf(0, at);
  if (nul < 0) throw protocolError('a string without its terminator');
  return [buffer.toString('utf8', at, nul), nul + 1];
}

/** An LSN as `X/Y` (hex halves), or null for 0/0. */
function lsnAt(buffer: Buffer, at: number): string | null {
  const high = buffer.readUInt32BE(at);
  const low = buffer.readUInt32BE(at + 4);
  if (high === 0 && low === 0) return null;
  return `${high.toString(16).toUpperCase()}/${low.toString(16).toUpperCase()}`;
}

function protocolError(message: string): ZerolossError {
  return new ZerolossError('ZL_STORE_UNAVAILABLE', `pgoutput: ${message}`, { retryable: true });
}
