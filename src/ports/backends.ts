import type { BrokerInspector, TopicAdmin } from './broker-inspector.ts';
import type { DeadLetterQueue, DeadLetterWriter } from './dead-letter-store.ts';
import type { InboxCache } from './inbox-cache.ts';
import type { GroupAdmin } from './group-admin.ts';
import type { InboxStore, StartLog } from './inbox-store.ts';
import type {
  AlarmStore,
  CollectorStore,
  DivertStore,
  HeldRunStore,
  InterventionStore,
  ReconcileStore,
  ResendStore,
  RetentionStore,
  StatusStore,
  TraceStore,
} from './operations-store.ts';
import type { OutboxWriter, RelaySource } from './outbox-store.ts';
import type { Database, SqlExecutor } from './sql-executor.ts';
import type { Publisher, Subscriber } from './transport.ts';

/** Everything the operations tools read and change in one schema. */
export type OperationsStore = ReconcileStore &
  ResendStore &
  TraceStore &
  StatusStore &
  InterventionStore &
  RetentionStore &
  DivertStore &
  AlarmStore &
  CollectorStore &
  HeldRunStore;

export interface MigrateResult {
  schema: string;
  applied: number[];
  current: number;
}

/**
 * A database backend, configured once (connection, schema, wake-ups): what every feature needs from the
 * database that holds the business tables. `postgres(…)` and `pglite(…)` return one; features read its
 * parts and never build an adapter of their own.
 */
export interface Store {
  /** 'postgres' or 'pglite'; for messages and checks, never for branching in features. */
  readonly kind: string;
  /** The schema holding zeroloss's tables. */
  readonly schema: string;
  /** zeroloss's own access: autocommit statements, its own transactions, commit wake-ups. */
  readonly db: Database;
  /** The write half `outbox.enqueue` calls inside the application's transaction. */
  readonly outbox: OutboxWriter;
  /** The outbox table as a relay source. */
  readonly relaySource: RelaySource;
  readonly inbox: InboxStore & StartLog;
  readonly deadLetters: DeadLetterWriter & DeadLetterQueue;
  /** The operations tools' view of the schema (reconcile, trace, status, interventions, retention). */
  readonly operations: OperationsStore;
  /** Creates or updates zeroloss's tables in `schema` (versioned, idempotent, safe to run concurrently). */
  migrate(): Promise<MigrateResult>;
  /** Runs `fn` in a transaction of zeroloss's own connection: commit if it resolves, rollback if it throws. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** Closes what the bundle opened itself (a pool made from a URL, a PGlite made from a directory). */
  close(): Promise<void>;
}

/**
 * A message broker, configured once (brokers, security, client ids): publisher for the relay and for
 * retry and dead-letter copies, subscriber for consumers, inspector and admin for the operations tools.
 * Its parts connect on first use.
 */
export interface Transport {
  /** 'kafka', 'table-log', 'redis-streams' or 'rabbitmq'. */
  readonly kind: string;
  readonly publisher: Publisher;
  readonly subscriber: Subscriber;
  /** The operations tools' read-only view (reconcile, trace, status); absent where a broker has none yet. */
  readonly inspector?: BrokerInspector;
  /** Topic and group changes of the backlog tools; absent where a broker has none yet. */
  readonly admin?: TopicAdmin;
  /** Deletes the committed positions of groups nobody runs any more (`zeroloss groups delete`). */
  readonly groups?: GroupAdmin;
  /** Creates the topic with the durability profile when missing; resolves to its partition count. */
  ensureTopic(topic: string, partitions: number): Promise<{ created: boolean; partitions: number }>;
  /** Closes every client the bundle opened. */
  close(): Promise<void>;
}

/** An inbox fast path (Redis): correctness never depends on it. */
export interface Cache {
  readonly kind: string;
  readonly inboxCache: InboxCache;
  close(): Promise<void>;
}
