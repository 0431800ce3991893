import type { ResendRequest } from '../core/control-message.ts';
import { ZerolossError } from '../core/errors.ts';
import type { ResendStore } from '../ports/operations-store.ts';
import type { ProducerSequenceStore, SequenceSource } from '../ports/sequence-store.ts';
import type { Publisher } from '../ports/transport.ts';
import type { ControlSender } from './control-channel.ts';
import type { OpsMetrics } from './ops-metrics.ts';
import { type ResendResult, resend } from './resend.ts';

/** A state-column source the control channel answers for: named, with its producer id, resent as `zeroloss resend` does. */
export type ControlSource = SequenceSource & ResendStore;

/** Most sequence numbers one resend request is answered for; the consumer asks again for the rest. */
export const MAX_RESEND_RANGE = 1_000;

export interface ResendAnswerDeps {
  sequences: ProducerSequenceStore;
  /** The outbox (the same store `zeroloss resend` uses). */
  outbox: ResendStore;
  /** State-column sources (`--config-file`): their rows are answered for too, by their producer id. */
  sources?: readonly ControlSource[];
  publisher: Publisher;
  metrics?: OpsMetrics;
}

/**
 * Answers a consumer group's resend request (C9) from this outbox and its state-column sources: the rows of
 * the producer, topic and key whose sequence is in the range are resent through `resend`, the audited path
 * of `zeroloss resend`, as `control:<group>`. A source answers for its producer id (default its name), which
 * it may share with the outbox: one key's numbers then interleave over both, so the rows go out in sequence
 * order, one run of one store after the other, and a run that failed stops the rest (a later number must
 * not overtake it). A request for a producer this service does not hold finds no rows and is left alone
 * (another producing service answers it). Answering twice is harmless: the consumer's inbox applies a
 * message once. A publish that fails throws, so the listener tries the request again.
 */
export function resendRequestHandler(
  deps: ResendAnswerDeps,
  onAnswered: (request: ResendRequest, result: ResendResult) => void = () => {},
): (request: ResendRequest) => Promise<void> {
  return async (request) => {
    const toSeq = Math.min(request.toSeq, request.fromSeq + MAX_RESEND_RANGE - 1);
    const sources = (deps.sources ?? []).filter((s) => s.producerId === request.producerId);
    const rows = await deps.sequences.idsInRange({ ...request, toSeq, sources: sources.map((s) => s.name) });
    if (rows.length === 0) return;
    const options = {
      actor: `control:${request.group}`,
      reason: `resend request of group ${request.group}: ${request.producerId}/${request.key} seq ${request.fromSeq}..${toSeq}`,
      metricReason: 'control',
    };
    const result: ResendResult = { selected: 0, resent: [], skipped: [], failed: [], notFound: [] };
    for (const run of runsOfOneStore(rows)) {
      const store = run.source === null ? deps.outbox : sources.find((s) => s.name === run.source);
      if (!store) continue;
      const r = await resend(
        { store, publisher: deps.publisher, metrics: deps.metrics },
        { ids: run.ids, topics: [request.topic] },
        options,
      );
      result.selected += r.selected;
      result.resent.push(...r.resent);
      result.skipped.push(...r.skipped);
      result.failed.push(...r.failed);
      result.notFound.push(...r.notFound);
      if (r.failed.length > 0) break;
    }
    onAnswered(request, result);
    if (result.failed.length > 0) {
      throw new ZerolossError('ZL_SEND_FAILED', `resend request of ${request.group}: ${result.failed.length} message(s) not resent`, {
        retryable: true,
      });
    }
  };
}

/** Consecutive rows held by one store (source null: the outbox), in the order given. */
function runsOfOneStore(
  rows: ReadonlyArray<{ messageId: string; source: string | null }>,
): Array<{ source: string | null; ids: string[] }> {
  const runs: Array<{ source: string | null; ids: string[] }> = [];
  for (const row of rows) {
    const last = runs[runs.length - 1];
    if (last && last.source === row.source) last.ids.push(row.messageId);
    else runs.push({ source: row.source, ids: [row.messageId] });
  }
  return runs;
}

export interface ProducerMarksOptions {
  /** How far back rows count as recently sent (by creation time); default 60 s. */
  withinMs?: number;
  /** Most marks read per round; default 10,000 (one message's worth). */
  limit?: number;
}

/**
 * Publishes the producer marks (C9, tail loss): for each producer of this outbox and of `sources`, the newest sent sequence
 * of each (topic, key) sent recently, with the partition and offset the broker acknowledged it at. A
 * consumer group that has read past that offset without applying that sequence has lost the tail of the
 * key. Returns how many marks went out. Keys quiet for longer than `withinMs` are not repeated: their last
 * marks went out while they were recent.
 */
export async function publishProducerMarks(
  deps: { sequences: ProducerSequenceStore; sender: ControlSender; sources?: readonly SequenceSource[] },
  options: ProducerMarksOptions = {},
): Promise<number> {
  const sources = (deps.sources ?? []).map((s) => ({ name: s.name, producerId: s.producerId }));
  const marks = await deps.sequences.recentSentMarks(options.withinMs ?? 60_000, options.limit ?? 10_000, sources);
  const byProducer = new Map<string, typeof marks>();
  for (const m of marks) {
    const list = byProducer.get(m.producerId) ?? [];
    list.push(m);
    byProducer.set(m.producerId, list);
  }
  const at = new Date().toISOString();
  for (const [producerId, list] of byProducer) {
    deps.sender.send({
      kind: 'producer-marks',
      producerId,
      at,
      marks: list.map((m) => ({ topic: m.topic, key: m.key, seq: m.seq, partition: m.partition, offset: m.offset.toString() })),
    });
  }
  return marks.length;
}
