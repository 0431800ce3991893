import { ZerolossError } from '../../core/errors.ts';
import { quoteIdent } from '../../core/identifier.ts';
import type { Store } from '../../ports/backends.ts';
import type { Database } from '../../ports/sql-executor.ts';
import { migrate } from './migrations.ts';
import { PostgresDeadLetterStore } from './postgres-dead-letter-store.ts';
import { PostgresInboxStore } from './postgres-inbox-store.ts';
import { PostgresOperationsStore } from './postgres-operations-store.ts';
import { PostgresOutboxStore } from './postgres-outbox-store.ts';
import { PostgresSequenceStore } from './postgres-sequence-store.ts';
import { StateColumnSource, type StateColumnSourceOptions } from './state-column-source.ts';

export interface PostgresStoreOptions {
  /** Schema of zeroloss's tables; default 'zeroloss'. */
  schema?: string;
  /**
   * Producers `pg_notify` at commit and relays LISTEN, instead of relays polling every `pollIntervalMs`
   * alone; default false. Costs commit throughput: Postgres serialises the commits of notifying transactions.
   */
  notify?: boolean;
  /** Enqueue as a named prepared statement on node-postgres connections; turn off behind PgBouncer in transaction mode before 1.21. */
  preparedStatements?: boolean;
}

/** A business table with its own send-state column, relayed like the outbox (the source's `mq_state` shape). */
export type StateColumnOptions<Row> = Omit<StateColumnSourceOptions<Row>, 'schema'>;

/** The Postgres-family store: the generic parts plus the state-column relay source, which needs SQL of its own. */
export interface PostgresStore extends Store {
  /** A relay source; its `notify(tx)` lets a producer wake listening relays at commit. */
  stateColumnSource<Row = Record<string, unknown>>(options: StateColumnOptions<Row>): StateColumnSource<Row>;
  /** Sequence marks and gaps (C9, consumer side) and the outbox reads of the control channel (producer side). */
  readonly sequences: PostgresSequenceStore;
}

const OPTION_KEYS = new Set(['schema', 'notify', 'preparedStatements']);

/**
 * Every zeroloss part on one Postgres-compatible database, configured once. The parts are built here and
 * only here, so the schema and the notify flag cannot disagree between producer, relay and consumer.
 */
export function postgresStore(db: Database, options: PostgresStoreOptions & { kind?: string } = {}): PostgresStore {
  for (const key of Object.keys(options)) {
    if (key !== 'kind' && !OPTION_KEYS.has(key)) {
      throw new ZerolossError('ZL_INVALID_CONFIG', `unknown store option '${key}' (known: ${[...OPTION_KEYS].join(', ')})`, {
        details: { field: key },
      });
    }
  }
  const schema = options.schema ?? 'zeroloss';
  quoteIdent(schema, 'schema');
  const outbox = new PostgresOutboxStore(db, {
    schema,
    notify: options.notify ?? false,
    preparedStatements: options.preparedStatements ?? true,
  });
  let inbox: PostgresInboxStore | undefined;
  let deadLetters: PostgresDeadLetterStore | undefined;
  let operations: PostgresOperationsStore | undefined;
  let sequences: PostgresSequenceStore | undefined;
  return {
    kind: options.kind ?? 'postgres',
    schema,
    db,
    outbox,
    relaySource: outbox,
    get inbox() {
      inbox ??= new PostgresInboxStore(db, { schema });
      return inbox;
    },
    get deadLetters() {
      deadLetters ??= new PostgresDeadLetterStore(db, { schema });
      return deadLetters;
    },
    get operations() {
      operations ??= new PostgresOperationsStore(db, { schema });
      return operations;
    },
    get sequences() {
      sequences ??= new PostgresSequenceStore(db, { schema, preparedStatements: options.preparedStatements ?? true });
      return sequences;
    },
    stateColumnSource: (sourceOptions) => new StateColumnSource(db, { ...sourceOptions, schema }),
    migrate: () => migrate(db, schema),
    transaction: (fn) => db.transaction(fn),
    close: () => db.close(),
  };
}
