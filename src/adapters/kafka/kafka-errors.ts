import { ZerolossError } from '../../core/errors.ts';

/**
 * Broker answers that no retry can change: the record itself is wrong for this topic. Anything else
 * (leader moves, timeouts, a broker down, not enough replicas) is worth retrying.
 */
const PERMANENT_API_ERRORS = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'CORRUPT_MESSAGE',
  'INVALID_TOPIC_EXCEPTION',
  'TOPIC_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'UNSUPPORTED_COMPRESSION_TYPE',
]);

interface ErrorLike {
  message?: string;
  code?: string;
  apiId?: string;
  errors?: unknown[];
  cause?: unknown;
}

/** True when the error says the cluster could not be reached at all (network, timeout), not that it refused the record. */
function isConnectivity(error: unknown, depth = 0): boolean {
  if (error === null || typeof error !== 'object' || depth > 6) return false;
  const e = error as ErrorLike;
  if (e.code === 'PLT_KFK_NETWORK' || e.code === 'PLT_KFK_TIMEOUT' || e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET') return true;
  if (Array.isArray(e.errors) && e.errors.length > 0 && e.errors.every((inner) => isConnectivity(inner, depth + 1))) return true;
  return e.cause !== undefined && isConnectivity(e.cause, depth + 1);
}

function findApiIds(error: unknown, found: string[] = [], depth = 0): string[] {
  if (error === null || typeof error !== 'object' || depth > 6) return found;
  const e = error as ErrorLike;
  if (typeof e.apiId === 'string') found.push(e.apiId);
  if (Array.isArray(e.errors)) for (const inner of e.errors) findApiIds(inner, found, depth + 1);
  if (e.cause) findApiIds(e.cause, found, depth + 1);
  return found;
}

/** Maps a @platformatic/kafka error to a typed one: ZL_SEND_REJECTED (permanent) or ZL_SEND_FAILED (retryable). */
export function kafkaSendError(error: unknown): ZerolossError {
  if (error instanceof ZerolossError) return error;
  if (isConnectivity(error)) {
    return new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', `broker unreachable: ${(error as ErrorLike)?.message ?? String(error)}`, {
      retryable: true,
      cause: error,
    });
  }
  const apiIds = findApiIds(error);
  const permanent = apiIds.find((id) => PERMANENT_API_ERRORS.has(id));
  const message = (error as ErrorLike)?.message ?? String(error);
  if (permanent) {
    return new ZerolossError('ZL_SEND_REJECTED', `broker rejected the record: ${permanent}`, {
      retryable: false,
      cause: error,
      details: { apiIds },
    });
  }
  const detail = apiIds.length > 0 ? ` (${[...new Set(apiIds)].join(', ')})` : '';
  return new ZerolossError('ZL_SEND_FAILED', `send failed: ${message}${detail}`, {
    retryable: true,
    cause: error,
    details: { apiIds },
  });
}

interface PartitionResponseLike {
  index?: number;
  errorCode?: number;
  baseOffset?: bigint;
}

/**
 * Partitions the broker did write although the send as a whole failed: other leaders' successful
 * answers (`error.produced`), and error-free partitions inside a failed response. Resending those
 * records would only put duplicates on the topic.
 */
export function writtenPartitions(error: unknown): Map<string, bigint> {
  const written = new Map<string, bigint>();
  const visit = (value: unknown, depth: number) => {
    if (value === null || typeof value !== 'object' || depth > 6) return;
    const e = value as {
      produced?: { offsets?: Array<{ topic: string; partition: number; offset: bigint }> };
      response?: { responses?: Array<{ name?: string; partitionResponses?: PartitionResponseLike[] }> };
      errors?: unknown[];
      cause?: unknown;
    };
    for (const o of e.produced?.offsets ?? []) written.set(`${o.topic}\u0000${o.partition}`, o.offset);
    for (const topic of e.response?.responses ?? []) {
      for (const p of topic.partitionResponses ?? []) {
        if (p.errorCode === 0 && typeof p.baseOffset === 'bigint' && topic.name !== undefined) {
          written.set(`${topic.name}\u0000${p.index}`, p.baseOffset);
        }
      }
    }
    if (Array.isArray(e.errors)) for (const inner of e.errors) visit(inner, depth + 1);
    if (e.cause) visit(e.cause, depth + 1);
  };
  visit(error, 0);
  return written;
}
