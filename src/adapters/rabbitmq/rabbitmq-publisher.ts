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
    /** Longest wait for the next confirm while records are outstanding. Keep it below the relay lease. */
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
 * one pipeline, and a later record already on its way cannot be called back: if its predecessor were
 * lost (a stream writer restarting drops what was cast to it, and the records after go to the new one),
 * it would be in the stream ahead of the predecessor's resend, an order violation, not a duplicate. So a
 * key's next record is published only after its predecessor's confirm. Keys do not wait for each other:
 * each key is a chain that moves on as soon as its own confirm is in, with no barrier between a batch's
 * first records and its second ones. A batch of 500 records over 100 keys still costs five confirm
 * round trips for its deepest key, but they overlap with the other keys' sends.
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
    const chains = new Map<string, Planned[]>();
    const check = (record: OutgoingRecord) => checkOutgoingRecord(record, counts, this.config.maxRecordBytes, RULES);
    // Screening already held back what follows a record it refused; a planned record of such a key came
    // before the refused one, so it goes. Only failures while sending hold back the rest of a chain.
    const { outcomes } = screenRecords(records, check, (record, index, slot) => {
      const partition = partitionFor(record.key, counts.get(record.topic)!);
      let chain = chains.get(slot);
      if (!chain) {
        chain = [];
        chains.set(slot, chain);
      }
      chain.push({ index, slot, partition, queue: rabbitNames.partition(record.topic, partition), record });
    });
    if (chains.size > 0) await this.#sendChains([...chains.values()], outcomes);
    return outcomes as PublishOutcome[];
  }

  /**
   * Sends every key's chain: the first record of each at once, then a key's next record as soon as its
   * predecessor's confirm is in, so no key waits on other keys' confirms. A failed record ends its chain;
   * the rest of it is held back, never published. Once no confirm has come for deliveryTimeoutMs, what is
   * outstanding fails.
   */
  async #sendChains(chains: Planned[][], outcomes: Array<PublishOutcome | undefined>): Promise<void> {
    let ch: ConfirmChannel;
    try {
      ch = await this.#confirmChannel();
    } catch (error) {
      this.#reset();
      const failure = rabbitError(error, 'publishing to RabbitMQ');
      for (const chain of chains) holdBack(chain, 0, failure, outcomes);
      return;
    }
    let open = chains.length;
    /** Per chain, the position of its record in flight; -1 once the chain ended. */
    const inFlight = chains.map(() => -1);
    let finish!: () => void;
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const settle = (c: number, at: number, error: ZerolossError | undefined) => {
      if (inFlight[c] !== at) return;
      const chain = chains[c]!;
      inFlight[c] = -1;
      if (error) holdBack(chain, at, error, outcomes);
      else outcomes[chain[at]!.index] = { ok: true, partition: chain[at]!.partition };
      if (!error && at + 1 < chain.length) send(c, at + 1);
      else if (--open === 0) finish();
    };
    const send = (c: number, at: number) => {
      const p = chains[c]![at]!;
      const messageId = `${this.instance}-${++this.#seq}`;
      inFlight[c] = at;
      try {
        // publish() returning false (socket buffer full) is not waited on: amqplib keeps the bytes, and a
        // call is at most one relay batch.
        ch.publish(
          '',
          p.queue,
          Buffer.isBuffer(p.record.value) ? p.record.value : Buffer.from(p.record.value),
          { persistent: true, mandatory: true, messageId, headers: { ...p.record.headers, [KEY_HEADER]: p.record.key } },
          (error) => {
            timer.refresh();
            // RabbitMQ sends basic.return before the confirm of the same message.
            const returned = this.#returned.delete(messageId);
            if (error) settle(c, at, rabbitError(error, `publishing to ${p.queue}`));
            else settle(c, at, returned ? unroutable(p) : undefined);
          },
        );
      } catch (error) {
        // The channel closed under the call: the record may or may not have gone out, so it failed attempted.
        this.#reset();
        settle(c, at, rabbitError(error, `publishing to ${p.queue}`));
      }
    };
    const timer = setTimeout(() => {
      // No confirm in time: whatever is outstanding may or may not be in the stream. A fresh channel keeps
      // late confirms from landing on the next call's records.
      this.#reset();
      const failure = new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', `no confirm within ${this.config.deliveryTimeoutMs} ms`, {
        retryable: true,
      });
      inFlight.forEach((at, c) => {
        if (at >= 0) settle(c, at, failure);
      });
    }, this.config.deliveryTimeoutMs);
    try {
      for (let c = 0; c < chains.length; c++) send(c, 0);
      await done;
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

/** The chain's record at `at` failed with `error` (attempted); every later one is held back, never published. */
function holdBack(chain: Planned[], at: number, error: ZerolossError, outcomes: Array<PublishOutcome | undefined>): void {
  outcomes[chain[at]!.index] = { ok: false, error, attempted: true };
  for (let i = at + 1; i < chain.length; i++) outcomes[chain[i]!.index] = { ok: false, error, attempted: false };
}

function unroutable(p: Planned): ZerolossError {
  // The Kafka publisher's answer for a missing topic: the stream was deleted; the relay backs the record
  // off uncharged until it exists again.
  return new ZerolossError('ZL_TOPIC_UNAVAILABLE', `no queue ${p.queue} took the message (returned unroutable)`, {
    retryable: true,
    details: { queue: p.queue },
  });
}
