import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyPostgresError } from '../../../src/adapters/postgres/postgres-errors.ts';
import { ZerolossError } from '../../../src/core/errors.ts';

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

/**
 * What node-postgres rejects with when TLS fails (as seen against a real server, in
 * test/integration/postgres-tls.test.ts): Node's certificate-check codes, the TLS alert the server sends
 * for a client certificate it does not trust, and pg's own message for a server without TLS. None of
 * them goes away by retrying, so none may look like the server being away.
 */
test('a certificate or TLS failure is ZL_STORE_TLS, not retryable, with the driver error as cause', () => {
  const failures = [
    withCode('self-signed certificate in certificate chain', 'SELF_SIGNED_CERT_IN_CHAIN'),
    withCode('self-signed certificate', 'DEPTH_ZERO_SELF_SIGNED_CERT'),
    withCode('unable to verify the first certificate', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'),
    withCode('certificate has expired', 'CERT_HAS_EXPIRED'),
    withCode("Hostname/IP does not match certificate's altnames", 'ERR_TLS_CERT_ALTNAME_INVALID'),
    withCode('ssl3_read_bytes:tlsv1 alert unknown ca', 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'),
    new Error('The server does not support SSL connections'),
    new Error('wrapped', { cause: withCode('self-signed certificate in certificate chain', 'SELF_SIGNED_CERT_IN_CHAIN') }),
  ];
  for (const raw of failures) {
    const error = classifyPostgresError(raw);
    assert.ok(error instanceof ZerolossError, raw.message);
    assert.equal(error.code, 'ZL_STORE_TLS', raw.message);
    assert.equal(error.retryable, false, raw.message);
    assert.equal(error.cause, raw);
    assert.match(error.message, /TLS/);
  }
});

test('ZL_STORE_TLS is not wrapped twice, and a TLS handshake timeout stays a retryable outage', () => {
  const tls = classifyPostgresError(withCode('self-signed certificate in certificate chain', 'SELF_SIGNED_CERT_IN_CHAIN'));
  assert.equal(classifyPostgresError(tls), tls);
  const timeout = new Error('timeout exceeded when trying to connect', {
    cause: withCode('Client network socket disconnected before secure TLS connection was established', 'ECONNRESET'),
  });
  assert.equal((classifyPostgresError(timeout) as ZerolossError).code, 'ZL_STORE_UNAVAILABLE');
});
