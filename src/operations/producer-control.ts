import type { Registry } from 'prom-client';
import { CONTROL_TOPIC } from '../core/control-message.ts';
import type { ResendStore } from '../ports/operations-store.ts';
import type { ProducerSequenceStore } from '../ports/sequence-store.ts';
import type { Publisher, Subscriber } from '../ports/transport.ts';
import { type ControlHandlers, ControlSender, listenControl } from './control-channel.ts';
import { createControlMetrics } from './control-metrics.ts';
import { type ControlSource, publishProducerMarks, resendRequestHandler } from './control-responder.ts';
import type { ResendResult } from './resend.ts';
import type { OpsMetrics } from './ops-metrics.ts';
import type { ResendRequest } from '../core/control-message.ts';

export interface ProducerControlOptions {
  subscriber: Subscriber;
  publisher: Publisher;
  sequences: ProducerSequenceStore;
  /** The outbox, as `zeroloss resend` uses it. */
  outbox: ResendStore;
  /**
   * State-column sources (`--config-file`): resend requests for their producer ids are answered from their
   * rows, and the marks include their keys.
   */
  sources?: readonly ControlSource[];
  /** The listener's group: every producing service (schema) reads the channel in a group of its own. */
  groupId: string;
  topic?: string;
  /**
   * Handlers of other kinds (receipts, O9) beside the built-in resend-request handler; a handler given here
   * for 'resend-request' replaces the built-in one.
   */
  handlers?: ControlHandlers;
  /** How often the producer marks go out (tail loss); 0: never. Default 10 s. */
  marksEveryMs?: number;
  /** Rows created this long ago or less count as recent for the marks; default max(60 s, 3 × marksEveryMs). */
  marksWithinMs?: number;
  registry: Registry;
  metrics?: OpsMetrics;
  onError?: (error: Error, task: string) => void;
  onResend?: (request: ResendRequest, result: ResendResult) => void;
}

export interface ProducerControl {
  readonly sender: ControlSender;
  /** Publishes the producer marks now (the timer does it every `marksEveryMs`); resolves to how many. */
  publishMarks(): Promise<number>;
  close(): Promise<void>;
}

/**
 * The producing side of the control channel (`zeroloss serve`): answers resend requests from this outbox
 * and its state-column sources, and publishes the producer marks on a timer. Bad records are skipped and counted
 * (zeroloss_control_invalid_total); a failing handler is retried and counted, and skipped (zeroloss_control_skipped_total) when it keeps failing for
 * a reason of its own; the listener keeps going.
 */
export async function startProducerControl(options: ProducerControlOptions): Promise<ProducerControl> {
  const metrics = createControlMetrics(options.registry);
  const onError = options.onError ?? (() => {});
  const topic = options.topic ?? CONTROL_TOPIC;
  const sender = new ControlSender({ publisher: options.publisher, topic, onError: (e) => onError(e, 'control send') });
  const handlers: ControlHandlers = {
    'resend-request': resendRequestHandler(
      {
        sequences: options.sequences,
        outbox: options.outbox,
        sources: options.sources,
        publisher: options.publisher,
        metrics: options.metrics,
      },
      options.onResend,
    ),
    ...options.handlers,
  };
  const counted: ControlHandlers = {};
  for (const [kind, handler] of Object.entries(handlers) as Array<[keyof ControlHandlers, (m: never, r: never) => Promise<void>]>) {
    (counted as Record<string, unknown>)[kind] = (m: never, r: never) => {
      metrics.received.inc({ side: 'producer', kind });
      return handler(m, r);
    };
  }
  const listener = await listenControl({
    subscriber: options.subscriber,
    groupId: options.groupId,
    topic,
    handlers: counted,
    onInvalid: (error) => {
      metrics.invalid.inc({ side: 'producer' });
      onError(error, 'control record skipped');
    },
    onError: (error) => {
      if ((error as { code?: unknown }).code === 'ZL_CONTROL_SKIPPED') metrics.skipped.inc({ side: 'producer' });
      else metrics.failures.inc({ side: 'producer' });
      onError(error, 'control');
    },
  });
  const everyMs = options.marksEveryMs ?? 10_000;
  const withinMs = options.marksWithinMs ?? Math.max(60_000, 3 * everyMs);
  const publishMarks = async () => {
    const n = await publishProducerMarks({ sequences: options.sequences, sender, sources: options.sources }, { withinMs });
    if (n > 0) metrics.sent.inc({ side: 'producer', kind: 'producer-marks' });
    return n;
  };
  let timer: NodeJS.Timeout | undefined;
  if (everyMs > 0) {
    timer = setInterval(() => void publishMarks().catch((e: Error) => onError(e, 'producer marks')), everyMs);
    timer.unref();
  }
  return {
    sender,
    publishMarks,
    async close() {
      if (timer) clearInterval(timer);
      await listener.close();
      await sender.close();
    },
  };
}
