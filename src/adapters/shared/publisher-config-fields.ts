import { z } from 'zod';

/** Publisher settings the partitioned transports share, with the same meaning and defaults. */
export const publisherConfigFields = {
  /** Largest record accepted (value + key + headers), like Kafka's max.message.bytes. */
  maxRecordBytes: z.number().int().positive().default(1_048_576),
  /** How long a topic's partition count is trusted before it is read again (counts only grow). */
  metadataMaxAgeMs: z.number().int().nonnegative().default(5_000),
};
