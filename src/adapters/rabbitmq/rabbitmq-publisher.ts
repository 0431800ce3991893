import { randomBytes } from 'node:crypto';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { amqp } from './rabbitmq-driver.ts';
import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import type { OutgoingRecord } from '../../core/envelope.ts';
import { ZerolossError } from '../../core/errors.ts';
import type { PublishOutcome, Publisher } from '../../ports/transport.ts';
import { checkOutgoingRecord, type OutgoingRecordRules } from '../shared/check-outgoing-record.ts';
import { PartitionCountCache } from '../shared/partition-count-cache.ts';
import { partitionFor } from '../../core/partition-for.ts';
import { publisherConfigFields } from '../shared/publisher-config-fields.ts';
import { screenRecords } from '../shared/screen-records.ts';
import { rabbitError } from './rabbitmq-errors.ts';
import { KEY_HEADER } from './rabbitmq-message.ts';
import { rabbitNames } from './rabbitmq-names.ts';
import { probePartitions } from './rabbitmq-topology.ts';

export const rabbitMqPublisherConfigSchema = z
  .object({
    /** amqp://user:password@host:port/vhost */
    url: z.string().min(1),
    ...publisherConfigFields,
    /** Upper bound on one round of confirms. Keep it below the relay lease. */
    deliveryTimeoutMs: z.number().int().positive().default(30_000),
  })
  .strict();

export type RabbitMqPublisherConfig = z.input<typeof rabbitMqPublisherConfigSchema>;

const RULES: OutgoingRecordRules = {
  checkHeader: (name) => {
    if (name === KEY_HEADER) return new ZerolossError('ZL_INVALID_MESSAGE', `header ${name} is reserved for the record key`);
    // AMQP header names are short strings.
    if (Buffer.byteLength(name) > 255)
      return new ZerolossError('ZL_INVALID_MESSAGE', `header name ${name.slice(0, 40)}… is over 255 bytes`);
    return undefined;
  },
  missingTopic: 'on RabbitMQ: create it with RabbitMqAdmin.createTopic',
};

interface Planned {
  index: number;
  slot: string;
  queue: string;
  partition: number;
  record: OutgoingRecord;
}

/**
 * Publishes to RabbitMQ streams (a stream queue per partition, the key's partition by Kafka's murmur2)
 * with publisher confirms, persistent messages and `mandatory`, so a message no queue took comes back
 * (basic.return) and counts as failed instead of vanishing. A record counts as sent only on its confirm.
 *
 * Confirms are per message, so a key's later record cannot be made to wait on an earlier one's fate in
 * one pipeline. A call is therefore sent in rounds: round n carries the n-th record of every key, and a
 * key whose record failed sits out the rounds after. Usually a relay batch holds a few records per key,
 * so a call costs a few round trips.
 */
export class RabbitMqPublisher implements Publisher {
  readonly config: Readonly<z.output<typeof rabbitMqPublisherConfigSchema>>;
  readonly #counts: PartitionCountCache;
  readonly #returned = new Set<string>();
  /** Names this publisher's connection and its message ids. */
  readonly instance = randomBytes(6).toString('hex');
  #seq = 0;
  #conn: Promise<ChannelModel> | undefined;
  #channel: Promise<ConfirmChannel> | undefined;

  constructor(config: RabbitMqPublisherConfig) {
    this.config = parseConfig(rabbitMqPublisherConfigSchema, config, 'rabbitmq publisher');
    this.#counts = new PartitionCountCache(this.config.metadataMaxAgeMs);
  }

  async publish(records: OutgoingRecord[]): Promise<PublishOutcome[]> {
    if (records.length === 0) return [];
    let counts: Map<string, number>;
    try {
      counts = await this.#partitionCounts(records);
    } catch (error) {
      this.#reset();
      const failure = rabbitError(error, 'reading topic metadata');
      return records.map(() => ({ ok: false, error: failure, attempted: true }));
    }
    const rounds: Planned[][] = [];
    const depth = new Map<string, number>();
    const check = (record: OutgoingRecord) => checkOutgoingRecord(record, counts, this.config.maxRecordBytes, RULES);
    // Screening already held back what follows a record it refused; a planned record of such a key came
    // before the refused one, so it goes. Only failures while sending hold back later rounds' records.
    const { outcomes } = screenRecords(records, check, (record, index, slot) => {
      const partition = partitionFor(record.key, counts.get(record.topic)!);
      const n = depth.get(slot) ?? 0;
      depth.set(slot, n + 1);
      rounds[n] ??= [];
      rounds[n].push({ index, slot, partition, queue: rabbitNames.partition(record.topic, partition), record });
    });
    const failed = new Map<string, ZerolossError>();
    for (const round of rounds) {
      const send: Planned[] = [];
      for (const p of round) {
        const held = failed.get(p.slot);
        if (held) outcomes[p.index] = { ok: false, error: held, attempted: false };
        else send.push(p);
      }
      if (send.length === 0) continue;
      const results = await this.#sendRound(send);
      send.forEach((p, i) => {
        const error = results[i];
        if (error) {
          failed.set(p.slot, error);
          outcomes[p.index] = { ok: false, error, attempted: true };
        } else {
          outcomes[p.index] = { ok: true, partition: p.partition };
        }
      });
    }
    return outcomes as PublishOutcome[];
  }

  /** Publishes every record of the round and waits for each confirm; per record undefined or its failure. */
  async #sendRound(send: Planned[]): Promise<Array<ZerolossError | undefined>> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const ch = await this.#confirmChannel();
      const confirms: Array<Promise<ZerolossError | undefined>> = [];
      for (const p of send) {
        const messageId = `${this.instance}-${++this.#seq}`;
        confirms.push(
          new Promise((resolve) => {
            // publish() returning false (socket buffer full) is not waited on: amqplib keeps the bytes, and
            // a round is at most one relay batch.
            ch.publish(
              '',
              p.queue,
              Buffer.isBuffer(p.record.value) ? p.record.value : Buffer.from(p.record.value),
              { persistent: true, mandatory: true, messageId, headers: { ...p.record.headers, [KEY_HEADER]: p.record.key } },
              (error) => {
                // RabbitMQ sends basic.return before the confirm of the same message.
                const returned = this.#returned.delete(messageId);
                if (error) resolve(rabbitError(error, `publishing to ${p.queue}`));
                else if (returned) resolve(unroutable(p));
                else resolve(undefined);
              },
            );
          }),
        );
      }
      const deadline = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), this.config.deliveryTimeoutMs);
      });
      const all = Promise.all(confirms);
      const result = await Promise.race([all, deadline]);
      if (result !== 'timeout') return result;
      // No confirm in time: whatever is outstanding may or may not be in the stream. A fresh channel keeps
      // late confirms from landing on the next call's records.
      this.#reset();
      const failure = new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', `no confirm within ${this.config.deliveryTimeoutMs} ms`, {
        retryable: true,
      });
      return send.map(() => failure);
    } catch (error) {
      this.#reset();
      const failure = rabbitError(error, 'publishing to RabbitMQ');
      return send.map(() => failure);
    } finally {
      clearTimeout(timer);
    }
  }

  #confirmChannel(): Promise<ConfirmChannel> {
    this.#channel ??= (async () => {
      const ch = await (await this.#connection()).createConfirmChannel();
      ch.on('error', () => {});
      ch.on('close', () => {
        if (this.#channel === current) this.#channel = undefined;
      });
      ch.on('return', (message) => {
        const id = message.properties.messageId;
        if (typeof id === 'string') this.#returned.add(id);
      });
      return ch;
    })();
    const current = this.#channel;
    current.catch(() => {
      if (this.#channel === current) this.#channel = undefined;
    });
    return current;
  }

  #connection(): Promise<ChannelModel> {
    if (this.#conn) return this.#conn;
    const current = amqp
      .connect(this.config.url, { clientProperties: { connection_name: `zeroloss-publisher-${this.instance}` } })
      .then((conn) => {
        conn.on('error', () => {});
        // A closed connection takes its channel and pending confirms with it; the next call connects again.
        conn.on('close', () => {
          if (this.#conn === current) this.#reset();
        });
        return conn;
      });
    this.#conn = current;
    return current;
  }

  #reset(): void {
    const conn = this.#conn;
    this.#conn = undefined;
    this.#channel = undefined;
    this.#returned.clear();
    conn?.then((c) => c.close()).catch(() => {});
  }

  async #partitionCounts(records: OutgoingRecord[]): Promise<Map<string, number>> {
    const now = Date.now();
    const { counts, stale } = this.#counts.lookup(records, now);
    for (const topic of stale) {
      const partitions = await probePartitions(await this.#connection(), topic);
      if (partitions > 0) {
        counts.set(topic, partitions);
        this.#counts.remember(topic, partitions, now);
      }
    }
    return counts;
  }

  async close(): Promise<void> {
    const conn = this.#conn;
    this.#conn = undefined;
    this.#channel = undefined;
    if (conn) await (await conn.catch(() => undefined))?.close().catch(() => {});
  }
}

function unroutable(p: Planned): ZerolossError {
  // The Kafka publisher's answer for a missing topic: the stream was deleted; the relay backs the record
  // off uncharged until it exists again.
  return new ZerolossError('ZL_TOPIC_UNAVAILABLE', `no queue ${p.queue} took the message (returned unroutable)`, {
    retryable: true,
    details: { queue: p.queue },
  });
}
