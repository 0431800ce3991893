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

/** The broker error names (apiId) anywhere inside a client error. */
export function findApiIds(error: unknown, found: string[] = [], depth = 0): string[] {
  if (error === null || typeof error !== 'object' || depth > 6) return found;
  const e = error as ErrorLike;
  if (typeof e.apiId === 'string') found.push(e.apiId);
  if (Array.isArray(e.errors)) for (const inner of e.errors) findApiIds(inner, found, depth + 1);
  if (e.cause) findApiIds(e.cause, found, depth + 1);
  return found;
}

/**
 * Answers that belong to a topic rather than to its records: the broker lacks it, or refuses this client
 * access to it. Creating the topic or fixing the ACL fixes every record of it at once.
 */
const TOPIC_API_ERRORS: Record<string, TopicUnavailableReason> = {
  UNKNOWN_TOPIC_OR_PARTITION: 'missing',
  TOPIC_AUTHORIZATION_FAILED: 'unauthorized',
};

export type TopicUnavailableReason = 'missing' | 'unauthorized';

/**
 * The client turns a metadata answer of UNKNOWN_TOPIC_OR_PARTITION into a UserError that keeps only the
 * topic's name in its message; this is the one place that reads it.
 */
const UNKNOWN_TOPIC_MESSAGE = /^Unknown topic (.+)\.$/;

/** Why `topic` cannot take records now, when the error says it is the topic's fault; undefined otherwise. */
function topicUnavailableReason(error: unknown, topic: string, depth = 0): TopicUnavailableReason | undefined {
  if (error === null || typeof error !== 'object' || depth > 6) return undefined;
  const e = error as ErrorLike;
  if (e.code === 'PLT_KFK_USER' && UNKNOWN_TOPIC_MESSAGE.exec(e.message ?? '')?.[1] === topic) return 'missing';
  if (typeof e.apiId === 'string' && TOPIC_API_ERRORS[e.apiId]) return TOPIC_API_ERRORS[e.apiId];
  for (const inner of Array.isArray(e.errors) ? e.errors : []) {
    const reason = topicUnavailableReason(inner, topic, depth + 1);
    if (reason) return reason;
  }
  return e.cause === undefined ? undefined : topicUnavailableReason(e.cause, topic, depth + 1);
}

/** True when the client says some topic it was asked about does not exist (which one, its message may misname). */
export function mentionsUnknownTopic(error: unknown, depth = 0): boolean {
  if (error === null || typeof error !== 'object' || depth > 6) return false;
  const e = error as ErrorLike;
  if (e.code === 'PLT_KFK_USER' && UNKNOWN_TOPIC_MESSAGE.test(e.message ?? '')) return true;
  if (e.apiId === 'UNKNOWN_TOPIC_OR_PARTITION') return true;
  if (Array.isArray(e.errors) && e.errors.some((inner) => mentionsUnknownTopic(inner, depth + 1))) return true;
  return e.cause !== undefined && mentionsUnknownTopic(e.cause, depth + 1);
}

/** ZL_UNKNOWN_TOPIC (permanent until someone acts): a subscription to topics the broker does not have. */
export function unknownTopicsError(topics: string[], cause?: unknown): ZerolossError {
  const commands = topics.map((t) => `npx zeroloss topics ensure ${t} --partitions <n> --kafka <brokers>`).join('; ');
  const which = topics.length === 1 ? `topic ${topics[0]} does` : `topics ${topics.join(', ')} do`;
  return new ZerolossError(
    'ZL_UNKNOWN_TOPIC',
    `${which} not exist on the broker; create ${topics.length === 1 ? 'it' : 'them'} with: ${commands}`,
    {
      retryable: false,
      cause,
      details: { topics },
    },
  );
}

/**
 * ZL_TOPIC_UNAVAILABLE (retryable): no record of `topic` can be written until someone creates the topic
 * or grants access, so its records wait without being charged an attempt.
 */
export function topicUnavailableError(topic: string, reason: TopicUnavailableReason, cause?: unknown): ZerolossError {
  const message =
    reason === 'missing'
      ? `topic ${topic} does not exist on the broker; create it with: npx zeroloss topics ensure ${topic} --partitions <n> --kafka <brokers>`
      : `the broker refuses this client access to topic ${topic} (TOPIC_AUTHORIZATION_FAILED); grant it Write on the topic`;
  return new ZerolossError('ZL_TOPIC_UNAVAILABLE', message, { retryable: true, cause, details: { topic, reason } });
}

/** SASL answers of the broker that mean the credentials, not the network, are wrong. */
const SASL_API_ERRORS = new Set(['SASL_AUTHENTICATION_FAILED', 'UNSUPPORTED_SASL_MECHANISM', 'ILLEGAL_SASL_STATE']);

/** Node's codes for a broker certificate this client does not accept (untrusted, expired, wrong name) or a TLS mismatch. */
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|ERR_OSSL_)|CERT|SELF_SIGNED|UNABLE_TO_(VERIFY|GET_ISSUER)|HOSTNAME_MISMATCH/;

type AccessFailure = { kind: 'auth' | 'acl' | 'tls'; message: string };

function findAccessFailure(error: unknown, depth = 0): AccessFailure | undefined {
  if (error === null || typeof error !== 'object' || depth > 8) return undefined;
  const e = error as ErrorLike;
  if (typeof e.apiId === 'string' && SASL_API_ERRORS.has(e.apiId)) return { kind: 'auth', message: e.apiId };
  // A cluster permission this client lacks (IdempotentWrite for the idempotent producer's InitProducerId on
  // older brokers): every record fails alike until someone grants it. Taken for the records' own fault it
  // parked every row, one by one.
  if (e.apiId === 'CLUSTER_AUTHORIZATION_FAILED') return { kind: 'acl', message: e.apiId };
  if (typeof e.code === 'string' && TLS_CODE.test(e.code)) return { kind: 'tls', message: `${e.code}: ${e.message ?? ''}` };
  // The client's own words for a TLS handshake that did not happen (plain text against a TLS listener or back).
  if (e.code === 'PLT_KFK_USER' && /TLS/.test(e.message ?? '')) return { kind: 'tls', message: e.message ?? 'TLS handshake failed' };
  for (const inner of [...(Array.isArray(e.errors) ? e.errors : []), e.cause]) {
    const found = findAccessFailure(inner, depth + 1);
    if (found) return found;
  }
  // An AuthenticationError without a broker answer inside: the broker dropped the handshake (e.g. a TLS
  // listener spoken to in plain text, or a mechanism it does not offer).
  if (e.code === 'PLT_KFK_AUTHENTICATION') return { kind: 'auth', message: e.message ?? 'SASL handshake failed' };
  return undefined;
}

/**
 * ZL_KAFKA_AUTH (the broker refused the SASL credentials) or ZL_KAFKA_TLS (the broker's certificate is not
 * trusted, has expired or names another host; or TLS is on at one end only), when the error says so;
 * undefined otherwise. Neither is retryable: the same credentials and CA fail the same way until an
 * operator changes them. The messages name what failed and what to check, never a credential (the client's
 * errors carry none either: the acceptance test inspects them whole).
 */
export function kafkaAccessError(error: unknown): ZerolossError | undefined {
  if (error instanceof ZerolossError) return error.code === 'ZL_KAFKA_AUTH' || error.code === 'ZL_KAFKA_TLS' ? error : undefined;
  const found = findAccessFailure(error);
  if (!found) return undefined;
  if (found.kind === 'acl') {
    return new ZerolossError(
      'ZL_KAFKA_AUTH',
      'Kafka refused this client a cluster permission (CLUSTER_AUTHORIZATION_FAILED): grant its principal IdempotentWrite on the cluster (the idempotent producer asks for it), or the cluster operation it was refused',
      { retryable: false, cause: error },
    );
  }
  if (found.kind === 'auth') {
    return new ZerolossError(
      'ZL_KAFKA_AUTH',
      `Kafka refused the SASL authentication (${found.message}): check the mechanism, the username and the password or token, and that the listener speaks SASL${found.message.includes('SASL_') ? '' : ' (and TLS, if it is a SASL_SSL listener)'}`,
      { retryable: false, cause: error },
    );
  }
  return new ZerolossError(
    'ZL_KAFKA_TLS',
    `TLS with the Kafka broker failed (${found.message}): check the CA the client trusts (tls.ca), the server name (tls.servername) and that the listener speaks TLS`,
    { retryable: false, cause: error },
  );
}

/** The typed access error when there is one, else the error as it came (for clients outside the publisher). */
export function kafkaClientError(error: unknown): Error {
  return kafkaAccessError(error) ?? (error instanceof Error ? error : new Error(String(error)));
}

/**
 * Maps a @platformatic/kafka error to a typed one: ZL_KAFKA_AUTH or ZL_KAFKA_TLS (the client may not connect
 * at all), ZL_TRANSPORT_UNAVAILABLE (no broker answered),
 * ZL_TOPIC_UNAVAILABLE (the send went to `topic` alone, and the topic is missing or refused),
 * ZL_SEND_REJECTED (permanent) or ZL_SEND_FAILED (retryable).
 */
export function kafkaSendError(error: unknown, topic?: string): ZerolossError {
  if (error instanceof ZerolossError) return error;
  const access = kafkaAccessError(error);
  if (access) return access;
  const reason = topic === undefined ? undefined : topicUnavailableReason(error, topic);
  if (topic !== undefined && reason) return topicUnavailableError(topic, reason, error);
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

/**
 * ZL_PRODUCER_FENCED (not retryable) when the broker answered PRODUCER_FENCED: a newer producer holds this
 * transactional id (a restarted instance of the same processor), so this one is a zombie and must stop;
 * undefined otherwise. INVALID_PRODUCER_EPOCH is not fencing here: the coordinator also bumps the epoch
 * when it aborts a transaction that outlived its timeout, and a new producer recovers from that. The
 * coordinator answers that producer's EndTxn with PRODUCER_FENCED too: the caller, which knows how long
 * its transaction was open, decides (see KafkaTransactionalProcessor).
 */
export function producerFencedError(error: unknown): ZerolossError | undefined {
  if (!findApiIds(error).includes('PRODUCER_FENCED')) return undefined;
  return new ZerolossError('ZL_PRODUCER_FENCED', 'a newer producer holds this transactional id; this instance stops', {
    retryable: false,
    cause: error,
  });
}
