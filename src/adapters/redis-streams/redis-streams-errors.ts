import { classifyError, ZerolossError } from '../../core/errors.ts';

/**
 * Turns what ioredis throws into our codes. A reply error is Redis refusing one command (out of memory,
 * wrong type): the send failed, and trying again later may work. Anything else (connection closed,
 * command timeout) means Redis could not be reached.
 */
export function redisError(error: unknown, what: string): ZerolossError {
  if (error instanceof ZerolossError) return error;
  const cause = classifyError(error);
  if (error instanceof Error && error.name === 'ReplyError') {
    return new ZerolossError('ZL_SEND_FAILED', `${what}: Redis answered ${cause.message}`, { retryable: true, cause: error });
  }
  return new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', `${what}: ${cause.message}`, { retryable: true, cause: error });
}
