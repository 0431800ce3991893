import type { ControlMessage, ProducerMarks } from '../core/control-message.ts';
import { type SequenceGap, type SequenceStore, sequenceKey } from '../ports/sequence-store.ts';

export interface GapWatcherSettings {
  gapAlarmAfterMs: number;
  autoRepair: boolean;
  repairBackoffMs: number;
  maxRepairRequests: number;
}

export interface GapWatcherOptions {
  store: SequenceStore;
  groupId: string;
  /** The group's main topics: producer marks of other topics are not this group's business. */
  topics: readonly string[];
  settings: GapWatcherSettings;
  /** Sends resend requests (needed with `autoRepair`). */
  send?: (message: ControlMessage) => void;
  /**
   * For a partition this process owns: the offset below which every delivered record is finished; undefined
   * when it does not own the partition (or has received nothing of it yet).
   */
  finishedBelow: (topic: string, partition: number) => bigint | undefined;
  onAlarm?: (gap: SequenceGap) => void;
  onRepairRequested?: (gap: SequenceGap) => void;
}

interface PendingMark {
  producerId: string;
  topic: string;
  key: string;
  seq: number;
  partition: number;
  offset: bigint;
  receivedAt: number;
}

/** A producer mark of a partition this process does not own is kept this long for a possible reassignment. */
const PENDING_MS = 10 * 60_000;
const MAX_PENDING = 100_000;

/**
 * Watches a consumer group's open sequence gaps (C9), which the effect transactions record in the database:
 * a gap open past the threshold is alarmed once (the sequence_alarm trail, and `onAlarm`); with auto-repair
 * the producing side is asked to resend it on the control channel, again after a backoff that doubles, a
 * bounded number of times. Gaps whose missing messages this group dead-lettered are healed (set aside, not
 * lost). Loss at the tail: the producer marks say which sequence a key last had and where it sits; once
 * this process has finished everything below that offset on that partition and the group's mark is still
 * lower, the rest is a gap.
 */
export class GapWatcher {
  readonly #o: GapWatcherOptions;
  readonly #topics: Set<string>;
  #pending = new Map<string, PendingMark>();

  constructor(options: GapWatcherOptions) {
    this.#o = options;
    this.#topics = new Set(options.topics);
  }

  get pendingMarks(): number {
    return this.#pending.size;
  }

  /** Takes the marks of the group's topics, to check once this process has read past them. */
  onProducerMarks(message: ProducerMarks): void {
    const now = Date.now();
    for (const m of message.marks) {
      if (!this.#topics.has(m.topic)) continue;
      const id = sequenceKey(m.topic, message.producerId, m.key);
      const before = this.#pending.get(id);
      if (before && before.seq >= m.seq) continue;
      this.#pending.delete(id);
      this.#pending.set(id, { ...m, producerId: message.producerId, offset: BigInt(m.offset), receivedAt: now });
    }
    // Oldest first out: a flood of marks bounds memory, and the newest are the likeliest to matter.
    for (const id of this.#pending.keys()) {
      if (this.#pending.size <= MAX_PENDING) break;
      this.#pending.delete(id);
    }
  }

  /** One round: tail checks, then alarms and repair requests for the open gaps. */
  async tick(): Promise<{ open: number; alarmed: number; requested: number }> {
    await this.#checkTails();
    const { store, groupId, settings } = this.#o;
    let open = await store.openGaps(groupId, 1_000);
    if (open.length === 0) return { open: 0, alarmed: 0, requested: 0 };
    const setAside = new Set((await store.healDeadLettered(groupId)).map((g) => g.id));
    open = open.filter((g) => !setAside.has(g.id));
    const due = open.filter((g) => g.ageMs >= settings.gapAlarmAfterMs);
    // The store decides who alarms a gap (another member of the group may watch the same gaps).
    const won = new Set(await store.markAlarmed(due.filter((g) => g.alarmedAt === null).map((g) => g.id)));
    const newlyAlarmed = due.filter((g) => won.has(g.id));
    for (const g of newlyAlarmed) this.#o.onAlarm?.(g);
    let requested = 0;
    const send = this.#o.send;
    if (settings.autoRepair && send) {
      for (const g of due) {
        if (g.repairRequests >= settings.maxRepairRequests || !g.repairDue) continue;
        // Counted first, sent only by the watcher whose count went in: one request per due gap.
        if (!(await store.markRepairRequested(g.id, settings.repairBackoffMs * 2 ** g.repairRequests, g.repairRequests))) continue;
        send({
          kind: 'resend-request',
          group: groupId,
          topic: g.topic,
          producerId: g.producerId,
          key: g.key,
          fromSeq: g.fromSeq,
          toSeq: g.toSeq,
          at: new Date().toISOString(),
        });
        requested++;
        this.#o.onRepairRequested?.(g);
      }
    }
    return { open: open.length, alarmed: newlyAlarmed.length, requested };
  }

  async #checkTails(): Promise<void> {
    if (this.#pending.size === 0) return;
    const now = Date.now();
    const ready: PendingMark[] = [];
    for (const [id, m] of this.#pending) {
      const below = this.#o.finishedBelow(m.topic, m.partition);
      if (below !== undefined && below > m.offset) {
        ready.push(m);
        this.#pending.delete(id);
      } else if (below === undefined && now - m.receivedAt > PENDING_MS) this.#pending.delete(id);
    }
    if (ready.length === 0) return;
    const applied = await this.#o.store.appliedSeqs(this.#o.groupId, ready);
    for (const m of ready) {
      const last = applied.get(sequenceKey(m.topic, m.producerId, m.key));
      if (last !== undefined && last >= m.seq) continue;
      // A key the group never applied a message of: it cannot tell its earlier messages lost from never
      // meant for it (the group joined later, or started at the latest offset), so it asks only for the
      // marked one. Asking from 1 made a group that turns `control` on ask every active key's history back.
      await this.#o.store.recordTailGap(this.#o.groupId, {
        topic: m.topic,
        partition: m.partition,
        producerId: m.producerId,
        key: m.key,
        fromSeq: last === undefined ? m.seq : last + 1,
        toSeq: m.seq,
        atOffset: m.offset,
      });
    }
  }
}
