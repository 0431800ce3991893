import { z } from 'zod';
import type { IncomingRecord, OutgoingRecord } from './envelope.ts';
import { ZerolossError } from './errors.ts';

/**
 * The control channel (C9, O9): a topic on the same broker as the business messages that both sides reach,
 * so a consuming service can ask the producing service for a resend and tell it what it applied without
 * either reading the other's database. Control messages are small JSON documents; every field is checked on
 * the way in, because any process that can write the topic can write one.
 */
export const CONTROL_TOPIC = 'zeroloss.control';

/** Header that marks a record as a control message, and which kind. */
export const CONTROL_HEADER = 'zl-control';

const seq = z.number().int().positive();
/** Longest group, topic, producer id or message id a control message carries. */
export const CONTROL_NAME_MAX = 512;

const name = z.string().min(1).max(CONTROL_NAME_MAX);

const resendRequest = z
  .object({
    kind: z.literal('resend-request'),
    /** The consumer group that found the gap. */
    group: name,
    topic: name,
    producerId: name,
    key: z.string().max(4096),
    /** The missing sequence numbers, both ends included. */
    fromSeq: seq,
    toSeq: seq,
    at: z.iso.datetime(),
  })
  .strict()
  .refine((m) => m.toSeq >= m.fromSeq, { message: 'toSeq must not be below fromSeq', path: ['toSeq'] });

const producerMarks = z
  .object({
    kind: z.literal('producer-marks'),
    producerId: name,
    at: z.iso.datetime(),
    /** The newest sequence the producer's relay has seen acknowledged per (topic, key), with where it sits. */
    marks: z
      .array(
        z
          .object({
            topic: name,
            key: z.string().max(4096),
            seq,
            partition: z.number().int().nonnegative(),
            offset: z.string().regex(/^\d+$/),
          })
          .strict(),
      )
      .max(10_000),
  })
  .strict();

const receipts = z
  .object({
    kind: z.literal('receipts'),
    /** The consumer group that applied the messages. */
    group: name,
    at: z.iso.datetime(),
    /** Messages whose effect this group committed (or found already committed), by producer. */
    applied: z.array(z.object({ messageId: name, producerId: z.string().max(CONTROL_NAME_MAX), topic: name }).strict()).max(10_000),
  })
  .strict();

export const controlMessageSchema = z.discriminatedUnion('kind', [resendRequest, producerMarks, receipts]);

export type ControlMessage = z.infer<typeof controlMessageSchema>;
export type ResendRequest = Extract<ControlMessage, { kind: 'resend-request' }>;
export type ProducerMarks = Extract<ControlMessage, { kind: 'producer-marks' }>;
export type Receipts = Extract<ControlMessage, { kind: 'receipts' }>;

/**
 * The record for a control message. Keyed by the producer it concerns (receipts: by the group), so one
 * producer's requests stay in order on one partition.
 */
export function encodeControl(message: ControlMessage, topic: string = CONTROL_TOPIC): OutgoingRecord {
  const checked = controlMessageSchema.parse(message);
  const key = checked.kind === 'receipts' ? checked.group : checked.producerId;
  return { topic, key, value: Buffer.from(JSON.stringify(checked)), headers: { [CONTROL_HEADER]: checked.kind } };
}

/** Reads a control record; anything malformed is a typed, non-retryable error the caller skips and counts. */
export function decodeControl(record: Pick<IncomingRecord, 'value'>): ControlMessage {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(record.value));
  } catch (error) {
    throw new ZerolossError('ZL_INVALID_MESSAGE', `control message is not UTF-8 JSON: ${(error as Error).message}`);
  }
  const parsed = controlMessageSchema.safeParse(json);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new ZerolossError('ZL_INVALID_MESSAGE', `invalid control message: ${why}`);
  }
  return parsed.data;
}
