import { sentCondition } from '../src/adapters/postgres/stream-sent-sql.ts';
import type pg from 'pg';
import type { TopicRecord } from './topic-reader.ts';

/** The figures of one scenario run, all counted from the databases and the topic, never from process counters. */
export interface Figures {
  /** Business rows committed (each with its outbox message). */
  committed: number;
  /** Records on the main topic, duplicates included. */
  onTopic: number;
  /** Records on the topic beyond the first copy of each message: allowed (at-least-once delivery), counted. */
  topicDuplicates: number;
  /** Distinct messages whose business effect was applied. */
  effects: number;
  /** Committed messages with neither an effect nor a dead letter. */
  lost: number;
  /** Messages whose effect was applied more than once. */
  appliedTwice: number;
  /** Messages with an effect or a topic record that were never committed (rolled back on purpose, or unknown). */
  phantom: number;
  /** Per key, an effect (or a first topic copy) whose sequence is below one applied (or sent) before it. */
  orderViolations: number;
  /** Messages in the dead_letter table. */
  deadLettered: number;
  /** From the later of "faults healed" and "workload finished" until every committed message had its outcome. */
  recoverySeconds: number;
}

export interface CheckDetails {
  /** Committed messages meant to fail for good (permanent handler error, poison): exactly these must be dead. */
  expectedDeadLetters: number;
  /** Size of the difference between the dead-lettered set and the expected set, plus effects applied to expected ones. */
  deadLetterMismatch: number;
  /** Outbox rows without a business row or the reverse: the outbox and the business change did not commit together. */
  outboxMismatch: number;
  /** Outbox rows never marked sent (parked ones included). */
  unsent: number;
  /** Committed messages absent from the topic. */
  notOnTopic: number;
  /** Sum of the effect rows' counters minus effect-log rows: non-zero if the effect row and the log parted. */
  effectRowMismatch: number;
  orderViolationsOnTopic: number;
  orderViolationsInEffects: number;
  /**
   * Committed messages whose zl-seq on the topic is not their place in their (producer, key)'s commit order
   * counted from 1 (a gap, a number used twice, numbers out of order), or whose copies carry different
   * numbers. Messages missing from the topic are counted as lost, not here.
   */
  sequenceViolations: number;
  rolledBackOnPurpose: number;
  phantomOfRolledBack: number;
  effectRows: number;
  /**
   * --exactly-once kafka-transactions: messages with more than one committed output, whether from one input
   * record (applied twice) or from copies the relay put on the topic (at-least-once, allowed).
   */
  messagesOutputTwice?: number;
  /** A few ids of each kind of failure, to start an investigation from. */
  samples: Record<string, string[]>;
}

export interface CheckResult {
  figures: Omit<Figures, 'recoverySeconds'>;
  details: CheckDetails;
}

export function failures(figures: Figures, details: CheckDetails): string[] {
  const out: string[] = [];
  if (figures.lost > 0) out.push(`lost ${figures.lost}`);
  if (figures.appliedTwice > 0) out.push(`appliedTwice ${figures.appliedTwice}`);
  if (figures.phantom > 0) out.push(`phantom ${figures.phantom}`);
  if (figures.orderViolations > 0) out.push(`orderViolations ${figures.orderViolations}`);
  if (details.deadLetterMismatch > 0) out.push(`deadLetterMismatch ${details.deadLetterMismatch}`);
  if (details.outboxMismatch > 0) out.push(`outboxMismatch ${details.outboxMismatch}`);
  if (details.effectRowMismatch !== 0) out.push(`effectRowMismatch ${details.effectRowMismatch}`);
  if (details.sequenceViolations > 0) out.push(`sequenceViolations ${details.sequenceViolations}`);
  return out;
}

/**
 * The effects of the Kafka-transactions variant (`--exactly-once kafka-transactions`): the output topic and
 * the input's dead-letter topic as a read_committed reader sees them (faults/committed-topic-reader.ts).
 * They replace the effect log and the dead_letter table; a record committed twice is an effect applied twice.
 */
export interface EffectsOnTopic {
  /** `input`: the input record (partition:offset) the output was made from. */
  outputs: Array<TopicRecord & { input: string; worker: string }>;
  deadLettered: TopicRecord[];
}

/** Partition by partition, in offset order: a key lives in one partition, so this is each key's order. */
function inTopicOrder(records: TopicRecord[]): TopicRecord[] {
  return [...records].sort((a, b) => a.partition - b.partition || (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
}

/** Committed messages with neither an output nor a dead letter on the topics, and unsent outbox rows. */
export async function outstandingOnTopic(pool: pg.Pool, schema: string, seen: Set<string>): Promise<{ pending: number; unsent: number }> {
  const s = `"${schema}"`;
  const orders = (await pool.query<{ message_id: string }>(`select message_id from ${s}.fx_order`)).rows;
  const { rows } = await pool.query<{ unsent: number }>(`select count(*)::int as unsent from ${s}.outbox o where not ${sentCondition(s)}`);
  return { pending: orders.filter((o) => !seen.has(o.message_id)).length, unsent: rows[0]?.unsent ?? -1 };
}

/**
 * What was committed, read from the source the relays relay: the business rows (the authority on what
 * committed), each message's place in its key's commit order and the producer whose per-key sequence
 * (zl-seq) it carries, and the rows not sent yet.
 */
export interface CommitLedger {
  /** Committed message id → its failure mark (null: none). */
  committed: Map<string, string | null>;
  /** Message id → its key, its key's commit order (higher is later) and its producer id. */
  order: Map<string, { key: string; seq: number; producer: string }>;
  /** Messages and business rows that did not commit together (outbox: one without the other). */
  outboxMismatch: number;
  /** Rows never marked sent (parked ones included). */
  unsent: number;
}

/** How a scenario's source is read: the ledger for the check, and the drain condition. */
export interface LedgerReader {
  ledger(pool: pg.Pool, schema: string): Promise<CommitLedger>;
  /** How many committed messages have no outcome yet, and how many rows are unsent. */
  outstanding(pool: pg.Pool, schema: string): Promise<{ pending: number; unsent: number }>;
  /**
   * The drain polls `outstanding` every 250 ms. A reader whose reading is more than one counting query (a
   * whole table read into the harness) says how often it may be taken; the drain answers from the last
   * reading in between. Unset: every poll.
   */
  progressEveryMs?: number;
}

/** The outbox table: fx_order rows are the business rows, the outbox's seq_id is a key's commit order. */
export const outboxLedger: LedgerReader = {
  async ledger(pool, schema) {
    const s = `"${schema}"`;
    const orders = (await pool.query<{ message_id: string; fail: string | null }>(`select message_id, fail from ${s}.fx_order`)).rows;
    const committed = new Map(orders.map((o) => [o.message_id, o.fail]));
    const outbox = (
      await pool.query<{ message_id: string; sent: number; seq_id: string; producer_id: string; msg_key: string }>(
        `select o.message_id, (case when ${sentCondition(s)} then 1 else 0 end) as sent, o.seq_id::text as seq_id, o.producer_id, o.msg_key from ${s}.outbox o`,
      )
    ).rows;
    const outboxIds = new Set(outbox.map((r) => r.message_id));
    let outboxMismatch = 0;
    for (const id of committed.keys()) if (!outboxIds.has(id)) outboxMismatch++;
    for (const id of outboxIds) if (!committed.has(id)) outboxMismatch++;
    return {
      committed,
      // A key's order is its commit order: the outbox's seq_id, drawn under the key's lock, so it orders the
      // messages of every producer writing the key (a producer's own zl-seq orders only its own).
      order: new Map(outbox.map((r) => [r.message_id, { key: r.msg_key, seq: Number(r.seq_id), producer: r.producer_id }])),
      outboxMismatch,
      unsent: outbox.filter((r) => r.sent !== 1).length,
    };
  },
  outstanding: (pool, schema) => outstanding(pool, schema),
};

/** How many committed messages have no outcome yet, and how many outbox rows are unsent: the drain condition. */
export async function outstanding(pool: pg.Pool, schema: string): Promise<{ pending: number; unsent: number }> {
  const s = `"${schema}"`;
  const { rows } = await pool.query<{ pending: number; unsent: number }>(`
    select
      (select count(*)::int from ${s}.fx_order o
        where not exists (select 1 from ${s}.fx_effect_log e where e.message_id = o.message_id)
          and not exists (select 1 from ${s}.dead_letter d where d.message_id = o.message_id)) as pending,
      (select count(*)::int from ${s}.outbox o where not ${sentCondition(s)}) as unsent`);
  return rows[0] ?? { pending: -1, unsent: -1 };
}

/**
 * Compares what was committed (business rows, the authority) with what reached the topic, what was
 * applied (effect log) and what was dead-lettered. `rolledBack` are the ids of transactions the workload
 * rolled back on purpose.
 */
export async function check(
  pool: pg.Pool,
  schema: string,
  topic: TopicRecord[],
  workload: { committed: Set<string>; rolledBack: Set<string> },
  effectsOnTopic?: EffectsOnTopic,
  reader: LedgerReader = outboxLedger,
): Promise<CheckResult> {
  const { rolledBack } = workload;
  const s = `"${schema}"`;
  const { committed, order, outboxMismatch, unsent } = await reader.ledger(pool, schema);
  const commitOrder = new Map([...order].map(([id, at]) => [id, at.seq]));
  const inCommitOrder = (items: Array<{ key: string; id: string }>) =>
    items.flatMap((x) => {
      const seq = commitOrder.get(x.id);
      // Not in the outbox: a phantom, counted as such.
      return seq === undefined ? [] : [{ key: x.key, id: x.id, seq }];
    });
  const effectLog = effectsOnTopic
    ? inTopicOrder(effectsOnTopic.outputs).map((r) => ({ message_id: r.id, msg_key: r.key, seq: r.seq }))
    : (
        await pool.query<{ message_id: string; msg_key: string; seq: number }>(
          `select message_id, msg_key, seq from ${s}.fx_effect_log order by id`,
        )
      ).rows;
  const dead = effectsOnTopic
    ? new Set(effectsOnTopic.deadLettered.map((r) => r.id))
    : new Set(
        (await pool.query<{ message_id: string | null }>(`select distinct message_id from ${s}.dead_letter`)).rows
          .map((r) => r.message_id)
          .filter((id): id is string => id !== null),
      );
  // Output records have no effect row to disagree with: their sum is the log itself.
  const accounts = effectsOnTopic
    ? [{ applied: String(effectLog.length) }]
    : (await pool.query<{ applied: string }>(`select coalesce(sum(applied), 0)::text as applied from ${s}.fx_account`)).rows;

  const samples: Record<string, string[]> = {};
  const sample = (kind: string, id: string) => {
    const list = samples[kind] ?? [];
    samples[kind] = list;
    if (list.length < 5) list.push(id);
  };

  const applied = new Map<string, number>();
  for (const e of effectLog) applied.set(e.message_id, (applied.get(e.message_id) ?? 0) + 1);
  const topicIds = new Set(topic.map((r) => r.id));

  // A commit the client saw that the database no longer has is lost too, whoever lost it.
  let lost = 0;
  for (const id of workload.committed) {
    if (!committed.has(id)) {
      lost++;
      sample('lostCommit', id);
    }
  }
  let appliedTwice = 0;
  let notOnTopic = 0;
  let expectedDeadLetters = 0;
  let deadLetterMismatch = 0;
  for (const [id, fail] of committed) {
    const times = applied.get(id) ?? 0;
    const isDead = dead.has(id);
    if (times === 0 && !isDead) {
      lost++;
      sample('lost', id);
    }
    if (!topicIds.has(id)) notOnTopic++;
    const mustDie = fail === 'permanent' || fail === 'poison';
    if (mustDie) expectedDeadLetters++;
    if (mustDie !== isDead || (mustDie && times > 0)) {
      deadLetterMismatch++;
      sample(mustDie ? 'expectedDeadLetterMissingOrApplied' : 'unexpectedDeadLetter', id);
    }
  }
  // The Kafka-transactions processor is exactly once per input record, not per message id: a message the
  // relay put on the topic twice has two outputs by design (the inbox consumer is what dedupes by id).
  // Applied twice there is one input record with two committed outputs; the rest is counted apart.
  const outputsPerInput = new Map<string, { id: string; times: number; by: string[] }>();
  for (const r of effectsOnTopic?.outputs ?? []) {
    const input = outputsPerInput.get(r.input) ?? { id: r.id, times: 0, by: [] };
    input.times++;
    input.by.push(`${r.worker}@${r.partition}:${r.offset}`);
    outputsPerInput.set(r.input, input);
  }
  let messagesOutputTwice = 0;
  for (const [id, times] of applied) {
    if (times > 1 && effectsOnTopic) messagesOutputTwice++;
    else if (times > 1) {
      appliedTwice++;
      sample('appliedTwice', id);
    }
  }
  for (const [input, { id, times, by }] of outputsPerInput) {
    if (times > 1) {
      appliedTwice++;
      sample('appliedTwice', id);
      // Which processor made each copy, and where it landed: a zombie's late commit, or a rewind's re-read.
      sample('appliedTwiceBy', `input ${input}: ${by.join(', ')}`);
    }
  }
  for (const id of dead) if (!committed.has(id)) deadLetterMismatch++;

  const phantoms = new Set<string>();
  for (const id of [...applied.keys(), ...topicIds]) {
    if (!committed.has(id)) phantoms.add(id);
  }
  for (const id of phantoms) sample('phantom', id);
  const phantomOfRolledBack = [...phantoms].filter((id) => rolledBack.has(id)).length;

  const orderViolationsInEffects = inversions(inCommitOrder(effectLog.map((e) => ({ key: e.msg_key, id: e.message_id }))), (id) =>
    sample('orderInEffects', id),
  );
  const orderViolationsOnTopic = inversions(
    // A key lives in one partition, so the partition's offset order is the key's order on the topic.
    inCommitOrder(inTopicOrder(topic)),
    (id) => sample('orderOnTopic', id),
  );

  const effectRowSum = Number(accounts[0]?.applied ?? 0);
  return {
    figures: {
      committed: committed.size,
      onTopic: topic.length,
      topicDuplicates: topic.length - topicIds.size,
      effects: applied.size,
      lost,
      appliedTwice,
      phantom: phantoms.size,
      orderViolations: orderViolationsInEffects + orderViolationsOnTopic,
      deadLettered: dead.size,
    },
    details: {
      expectedDeadLetters,
      deadLetterMismatch,
      outboxMismatch,
      unsent,
      notOnTopic,
      sequenceViolations: sequenceViolations(committed, order, topic, (id) => sample('sequence', id)),
      effectRowMismatch: effectRowSum - effectLog.length,
      orderViolationsOnTopic,
      orderViolationsInEffects,
      rolledBackOnPurpose: rolledBack.size,
      phantomOfRolledBack,
      effectRows: effectLog.length,
      ...(effectsOnTopic ? { messagesOutputTwice } : {}),
      samples,
    },
  };
}

/**
 * Per key, walks the first occurrence of each message in the given order and counts those whose
 * sequence is not above the highest seen before (a later message applied or sent before an earlier one).
 * Later occurrences are duplicates, counted elsewhere; gaps are loss or dead letters, counted elsewhere.
 */
function inversions(items: Array<{ key: string; id: string; seq: number }>, onViolation: (id: string) => void): number {
  const seen = new Set<string>();
  const highest = new Map<string, number>();
  let count = 0;
  for (const item of items) {
    if (seen.has(item.id)) continue;
    seen.add(item.id);
    const top = highest.get(item.key) ?? 0;
    if (!(item.seq > top)) {
      count++;
      onViolation(item.id);
    }
    highest.set(item.key, Math.max(top, item.seq));
  }
  return count;
}

/**
 * zl-seq is gapless from 1 per (producer id, message key), in the key's commit order (a transaction or a
 * claim that rolls back takes its numbers back): the n-th committed message of a (producer, key) must carry
 * n on the topic, in every copy.
 */
function sequenceViolations(
  committed: Map<string, string | null>,
  order: Map<string, { key: string; seq: number; producer: string }>,
  topic: TopicRecord[],
  onViolation: (id: string) => void,
): number {
  const onTopic = new Map<string, Set<number>>();
  for (const r of topic) {
    const seqs = onTopic.get(r.id) ?? new Set<number>();
    onTopic.set(r.id, seqs);
    seqs.add(r.seq);
  }
  const lanes = new Map<string, Array<{ id: string; at: number; seqs: Set<number> }>>();
  for (const id of committed.keys()) {
    const at = order.get(id);
    // Not in the ledger's order: an outbox mismatch, counted as such.
    if (at === undefined) continue;
    const lane = `${at.producer}\u0000${at.key}`;
    const list = lanes.get(lane) ?? [];
    lanes.set(lane, list);
    // Not on the topic: counted as lost (or dead) elsewhere, but its number is taken all the same.
    list.push({ id, at: at.seq, seqs: onTopic.get(id) ?? new Set() });
  }
  let count = 0;
  for (const list of lanes.values()) {
    list.sort((a, b) => a.at - b.at);
    list.forEach((m, i) => {
      if (m.seqs.size === 0) return;
      if (m.seqs.size !== 1 || !m.seqs.has(i + 1)) {
        count++;
        onViolation(m.id);
      }
    });
  }
  return count;
}
