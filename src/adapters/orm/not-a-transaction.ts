import { ZerolossError } from '../../core/errors.ts';

/**
 * The error of an ORM adapter given a handle that is not a transaction (the ORM's root database, a pool, a
 * client between transactions): each statement would then commit on its own, the outbox row with it, so
 * the message would be sent even when the caller's business transaction rolls back. Refused instead.
 */
export function notATransaction(adapter: string, how: string): ZerolossError {
  return new ZerolossError(
    'ZL_INVALID_CONFIG',
    `${adapter} needs the transaction the business writes go through (${how}): given a handle that is not one, ` +
      'the outbox row would commit on its own, and the message be sent even if the business transaction rolls back',
    { details: { field: 'transaction' } },
  );
}
