import { randomBytes, randomUUID } from 'node:crypto';
import { test } from 'node:test';
import type { Store } from '../../src/ports/backends.ts';
import type { DeadLetterInput } from '../../src/ports/dead-letter-store.ts';
import type { InboxEntry } from '../../src/ports/inbox-store.ts';
import type { ClaimedRow, OutboxRow } from '../../src/ports/outbox-store.ts';
import { uniqueName } from '../helpers/pg.ts';

/** What a backend gives the suite: a store on a schema nobody else uses, not yet migrated. */
export interface StoreUnderTest {
  store: Store;
  /** Drops the schema (unless it goes away with the database) and closes what `open` opened. */
  close(): Promise<void>;
}

export type OpenStore = (options: { schema: string; notify: boolean }) => Promise<StoreUnderTest>;

export interface StoreConformanceOptions {
  /** Test title → why this backend does not pass it yet. The test still runs, reported as todo. */
  todo?: Record<string, string>;
  /** Test title → why this backend cannot even run it (it would hang the shared database for the tests after it). */
  skip?: Record<string, string>;
  /** How many tests run at once (each has its own schema); default 1. */
  concurrency?: number;
}

export interface RunOptions {
  /** Run `migrate()` before the body; default true. */
  migrated?: boolean;
  /** Open the store with commit-time notifications; default false. */
  notify?: boolean;
}

export type Run = (title: string, body: (h: StoreHarness) => Promise<void>, options?: RunOptions) => void;

const TEST_TIMEOUT_MS = 30_000;

/** Runs each test on a fresh schema of a fresh store, dropped afterwards. */
export function runner(open: OpenStore, options: StoreConformanceOptions): Run {
  return (title, body, runOptions = {}) => {
    const todo = options.todo?.[title];
    const skip = options.skip?.[title];
    test(title, {
      timeout: TEST_TIMEOUT_MS,
      ...(todo === undefined ? {} : { todo }),
      ...(skip === undefined ? {} : { skip }),
    }, async () => {
      const schema = uniqueName('zlsc');
      const { store, close } = await open({ schema, notify: runOptions.notify ?? false });
      try {
        if (runOptions.migrated ?? true) await store.migrate();
        await body(new StoreHarness(store, schema));
      } finally {
        await close();
      }
    });
  };
}

/** Thrown from a transaction body to roll it back on purpose. */
export class Rollback extends Error {}

export class StoreHarness {
  readonly store: Store;
  readonly schema: string;

  constructor(store: Store, schema: string) {
    this.store = store;
    this.schema = schema;
  }

  /** An outbox row whose payload is not valid UTF-8 and whose headers are not ASCII, so a lossy round trip shows. */
  row(key: string, overrides: Partial<OutboxRow> = {}): OutboxRow {
    return {
      messageId: randomUUID(),
      topic: 'orders',
      key,
      type: 'order.created',
      traceId: randomBytes(16).toString('hex'),
      producerId: 'producer-1',
      headers: { 'x-tenant': 'tënant-ü', 'content-type': 'application/octet-stream' },
      payload: Buffer.concat([Buffer.from([0x00, 0xff, 0xfe, 0x80]), randomBytes(32)]),
      ...overrides,
    };
  }

  /** Inserts each row in a transaction of its own, committed in order; returns the per-key sequence numbers. */
  async enqueue(...rows: OutboxRow[]): Promise<number[]> {
    const seqs: number[] = [];
    for (const row of rows) seqs.push((await this.store.transaction((tx) => this.store.outbox.insert(tx, row, true))).seq);
    return seqs;
  }

  claim(owner: string, limit = 10, leaseMs = 60_000): Promise<ClaimedRow[]> {
    return this.store.relaySource.claim(owner, limit, leaseMs);
  }

  entry(groupId: string, idempotencyKey: string, contentDigest?: string): InboxEntry {
    return {
      groupId,
      idempotencyKey,
      messageId: idempotencyKey,
      topic: 'orders',
      partition: 2,
      offset: 41n,
      ...(contentDigest === undefined ? {} : { contentDigest }),
    };
  }

  deadLetter(overrides: Partial<DeadLetterInput> = {}): DeadLetterInput {
    const messageId = randomUUID();
    return {
      groupId: 'billing',
      idempotencyKey: messageId,
      messageId,
      topic: 'orders',
      partition: 1,
      offset: 7n,
      key: 'customer-7',
      type: 'order.created',
      headers: { 'zl-trace': 'trace-1', 'x-tenant': 'tënant-ü' },
      payload: Buffer.from([0x00, 0xff, 0x7b, 0x7d]),
      errorCode: 'ZL_PERMANENT',
      error: 'card declined',
      stack: 'Error: card declined\n    at handler',
      attempts: 3,
      firstFailureAt: new Date('2026-01-02T03:04:05.000Z'),
      lastFailureAt: new Date('2026-01-02T03:04:09.000Z'),
      details: { reason: 'declined', codes: [51, 54] },
      ...overrides,
    };
  }
}

/** A content digest as the consumer computes it: 16 bytes, lowercase hex. */
export function digest(): string {
  return randomBytes(16).toString('hex');
}

export const messageIds = (rows: ClaimedRow[]): string[] => rows.map((r) => r.messageId);
