import { ZerolossError } from '../../core/errors.ts';

/** SQLSTATEs meaning "the server is not there right now": connection exceptions, shutdowns, too many clients. */
const UNAVAILABLE_SQLSTATES = new Set(['08000', '08001', '08003', '08004', '08006', '57P01', '57P02', '57P03', '53300']);
/** Socket errors node-postgres passes through when it cannot reach or lost the server. */
const UNAVAILABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
/** node-postgres raises these without a code: a dead connection, a pool that could not connect in time. */
const UNAVAILABLE_MESSAGES = [
  /connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /not queryable/i,
  /connection.*closed/i,
];

/**
 * TLS that cannot succeed by trying again: Node's certificate checks (its X509 codes such as
 * SELF_SIGNED_CERT_IN_CHAIN, UNABLE_TO_VERIFY_LEAF_SIGNATURE, CERT_HAS_EXPIRED, and
 * ERR_TLS_CERT_ALTNAME_INVALID), the server's alert for a client certificate it does not trust
 * (ERR_SSL_TLSV1_ALERT_UNKNOWN_CA), and node-postgres's message for a server without TLS when the URL
 * asks for it. A handshake timeout is an outage, not a configuration error.
 */
const TLS_CODE = /CERT|CRL|^UNABLE_TO_|^ERR_TLS_|^ERR_SSL_|^INVALID_CA$|^INVALID_PURPOSE$|^PATH_LENGTH_EXCEEDED$|^HOSTNAME_MISMATCH$/;
const TLS_TRANSIENT_CODES = new Set(['ERR_TLS_HANDSHAKE_TIMEOUT']);
const TLS_MESSAGES = [/server does not support SSL connections/i];

/**
 * Conflicts with concurrent transactions (40P01 deadlock, 40001 serialization failure, 55P03 lock not
 * available): nothing is wrong with the statement, and the same work succeeds when run again.
 */
const CONFLICT_SQLSTATES = new Set(['40P01', '40001', '55P03']);
/** "current transaction is aborted": a statement after an earlier one failed and its error was caught. */
const IN_FAILED_TRANSACTION = '25P02';

/**
 * Turns what Postgres (node-postgres or PGlite) says into our codes, so callers decide from `code` and
 * `retryable` and never from SQLSTATEs or driver messages:
 * - the login refused (28P01, 28000): ZL_STORE_AUTH, not retryable;
 * - TLS refused or a certificate not trusted (anywhere in the cause chain): ZL_STORE_TLS, not retryable:
 *   a wrong CA or certificate is a configuration to fix, not an outage to wait out;
 * - the server is unreachable or went away (anywhere in the cause chain): ZL_STORE_UNAVAILABLE;
 * - a conflict with a concurrent transaction: ZL_STORE_CONFLICT;
 * - a statement refused because its transaction is already aborted: ZL_TRANSACTION_ROLLED_BACK.
 * The last three are retryable; all keep the driver's error as `cause`. Anything else (a constraint violation, a
 * syntax error, an error of the caller's own) is returned as it is, so callers that look at the SQLSTATE
 * of such errors still can. Never throws.
 */
export function classifyPostgresError(error: unknown): unknown {
  try {
    return classify(error);
  } catch {
    return error;
  }
}

function classify(error: unknown): unknown {
  if (error instanceof ZerolossError && ['ZL_STORE_UNAVAILABLE', 'ZL_STORE_TLS', 'ZL_STORE_AUTH'].includes(error.code)) return error;
  const sqlstate = (error as { code?: unknown } | null)?.code;
  if (sqlstate === '28P01' || sqlstate === '28000') {
    // The server's message names the user, never the password; a wrong login is a setting to fix, not an outage.
    return new ZerolossError('ZL_STORE_AUTH', `the database refused the login: ${messageOf(error)}`, {
      retryable: false,
      cause: error,
      details: { sqlstate },
    });
  }
  if (inChain(error, isTls, 0)) {
    return new ZerolossError('ZL_STORE_TLS', `TLS to the database failed: ${messageOf(error)}`, { retryable: false, cause: error });
  }
  if (inChain(error, isUnavailable, 0)) {
    return new ZerolossError('ZL_STORE_UNAVAILABLE', `the database is unavailable: ${messageOf(error)}`, {
      retryable: true,
      cause: error,
    });
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && CONFLICT_SQLSTATES.has(code)) {
    return new ZerolossError('ZL_STORE_CONFLICT', `conflict with a concurrent transaction: ${messageOf(error)}`, {
      retryable: true,
      cause: error,
      details: { sqlstate: code },
    });
  }
  if (code === IN_FAILED_TRANSACTION) {
    return new ZerolossError(
      'ZL_TRANSACTION_ROLLED_BACK',
      `the transaction is aborted: an earlier statement in it failed and its error was caught (${messageOf(error)})`,
      { retryable: true, cause: error, details: { sqlstate: code } },
    );
  }
  return error;
}

type Raised = { code?: unknown; message?: unknown; cause?: unknown };

/** Walks the cause chain and AggregateError members, bounded: a cyclic chain must not hang the classifier. */
function inChain(error: unknown, test: (e: Raised) => boolean, depth: number): boolean {
  if (error === null || typeof error !== 'object' || depth > 5) return false;
  if (test(error as Raised)) return true;
  if (error instanceof AggregateError && error.errors.some((inner) => inChain(inner, test, depth + 1))) return true;
  return inChain((error as Raised).cause, test, depth + 1);
}

function isUnavailable(e: Raised): boolean {
  if (e instanceof ZerolossError && e.code === 'ZL_STORE_UNAVAILABLE') return true;
  if (typeof e.code === 'string' && (UNAVAILABLE_SQLSTATES.has(e.code) || UNAVAILABLE_NODE_CODES.has(e.code))) return true;
  return typeof e.message === 'string' && UNAVAILABLE_MESSAGES.some((re) => re.test(e.message as string));
}

function isTls(e: Raised): boolean {
  if (e instanceof ZerolossError) return e.code === 'ZL_STORE_TLS';
  if (typeof e.code === 'string' && TLS_CODE.test(e.code) && !TLS_TRANSIENT_CODES.has(e.code)) return true;
  return typeof e.message === 'string' && TLS_MESSAGES.some((re) => re.test(e.message as string));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message || error.name : String(error);
}
