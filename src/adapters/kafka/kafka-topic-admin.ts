import type { Admin } from '@platformatic/kafka';
import type { CommittedOffset, TopicAdmin } from '../../ports/broker-inspector.ts';
import { ensureTopic } from './kafka-admin.ts';

/** TopicAdmin over a Kafka Admin client (the inspector's, or your own). */
export class KafkaTopicAdmin implements TopicAdmin {
  readonly #admin: Admin;

  constructor(admin: Admin) {
    this.#admin = admin;
  }

  async ensureTopic(topic: string, partitions: number): Promise<{ created: boolean; partitions: number }> {
    const result = await ensureTopic(this.#admin, { topic, partitions });
    return { created: result.created, partitions: result.partitions };
  }

  async createPartitions(topic: string, total: number): Promise<void> {
    await this.#admin.createPartitions({ topics: [{ name: topic, count: total }] });
  }

  async alterGroupOffsets(groupId: string, offsets: CommittedOffset[]): Promise<void> {
    const topics = [...new Set(offsets.map((o) => o.topic))].map((name) => ({
      name,
      partitionOffsets: offsets.filter((o) => o.topic === name).map((o) => ({ partition: o.partition, offset: o.offset })),
    }));
    await this.#admin.alterConsumerGroupOffsets({ groupId, topics });
  }
}
