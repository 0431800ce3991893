import { classifyError, ZerolossError } from '../../core/errors.ts';

/**
 * Turns what amqplib throws into our codes. A channel closed by the broker with a 4xx code is RabbitMQ
 * refusing one operation; anything else (socket closed, connection refused, timeout) means the broker
 * could not be reached. Both may succeed later.
 */
export function rabbitError(error: unknown, what: string): ZerolossError {
  if (error instanceof ZerolossError) return error;
  const cause = classifyError(error);
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'number' && code >= 400 && code < 500) {
    return new ZerolossError('ZL_SEND_FAILED', `${what}: RabbitMQ answered ${cause.message}`, { retryable: true, cause: error });
  }
  return new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', `${what}: ${cause.message}`, { retryable: true, cause: error });
}

/** amqplib's "the queue is declared exclusively by another connection" (405 RESOURCE_LOCKED). */
export function isResourceLocked(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 405 || /RESOURCE.LOCKED/.test(String((error as Error | null)?.message));
}

/** 404 NOT_FOUND: a passive declare of a queue that does not exist. */
export function isNotFound(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 404 || /NOT.FOUND/.test(String((error as Error | null)?.message));
}
