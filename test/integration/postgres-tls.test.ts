import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { startPostgresInstance, type PostgresInstance } from '../../infra/services/postgres-instance.ts';
import { createTestCa, type TestCa, signTestCertificate } from '../../infra/services/test-certificates.ts';
import { ZerolossError } from '../../src/core/errors.ts';
import { postgres } from '../../src/entry/postgres.ts';
import { createOutbox } from '../../src/index.ts';
import { BROKERS, createTopics, uniqueId } from '../helpers/consumer-fixtures.ts';
import { freePort } from '../helpers/consumer-workload.ts';
import { waitFor } from '../helpers/wait-for.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const PASSWORD = `zl-secret-${process.pid}`;

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The store's one question: is the connection it ran on encrypted, and as whom. */
async function sslOf(url: string): Promise<{ ssl: boolean; user: string }> {
  const store = postgres(url, { max: 1 });
  try {
    const { rows } = await store.db.query<{ ssl: boolean; user: string }>(
      'select ssl, current_user as "user" from pg_stat_ssl where pid = pg_backend_pid()',
    );
    return rows[0] as { ssl: boolean; user: string };
  } finally {
    await store.close();
  }
}

/** What connecting through the store rejects with (the bundle classifies the driver's error). */
async function failureOf(url: string): Promise<unknown> {
  const store = postgres(url, { max: 1 });
  try {
    await store.db.query('select 1');
  } catch (error) {
    return error;
  } finally {
    await store.close();
  }
  assert.fail(`connected with ${url}`);
}

function assertTlsRefusal(error: unknown, driverCode: string): asserts error is ZerolossError {
  assert.ok(error instanceof ZerolossError, inspect(error));
  assert.equal(error.code, 'ZL_STORE_TLS');
  assert.equal(error.retryable, false, 'a certificate to fix is not an outage to wait out');
  assert.equal((error.cause as { code?: string }).code, driverCode);
}

/**
 * Issue 13, acceptance 3: a throwaway Postgres with ssl=on and a certificate from a CA made at test time.
 * The URL's TLS parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) reach node-postgres unchanged
 * through the `postgres(url)` bundle and through the CLI's --pg, and what pg does with them — which
 * differs from libpq for `sslmode=require` — is pinned here so docs/security.md stays true.
 */
describe('Postgres over TLS', () => {
  let instance: PostgresInstance;
  let ca: string;
  let untrusted: TestCa;
  let dir: string;
  let hostPort: string;
  const url = (query: string, user = 'postgres') => `postgres://${user}@${hostPort}/postgres?${query}`;
  const verified = () => url(`sslmode=verify-full&sslrootcert=${ca}`);

  before(async () => {
    instance = await startPostgresInstance({ port: await freePort(), name: `tls-${process.pid}`, tls: true });
    assert.ok(instance.tls);
    ca = instance.tls.ca.certFile;
    hostPort = `127.0.0.1:${instance.port}`;
    dir = mkdtempSync(join(tmpdir(), 'zl-pg-tls-'));
    untrusted = await createTestCa(dir, 'untrusted', 'zeroloss untrusted CA');
    const admin = postgres(instance.url, { max: 1 });
    await admin.db.query(`create role ${instance.tls.certUser} login`);
    await admin.close();
  });

  after(async () => {
    await instance?.discard();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('sslmode=verify-full with the CA as sslrootcert: a store migrates, enqueues and reads back, on TLS connections only', async () => {
    const schema = uniqueId('zltls').replaceAll('-', '_');
    const store = postgres(verified(), { schema });
    try {
      await store.migrate();
      const outbox = createOutbox({ store, producerId: 'tls-test' });
      const sent = await store.transaction((tx) =>
        outbox.enqueue(tx, { topic: 'orders', key: 'k-1', type: 'order.placed', payload: { id: 'o-1' } }),
      );
      const { rows } = await store.db.query<{ topic: string; msg_key: string; state: number }>(
        `select topic, msg_key, state from ${schema}.outbox where message_id = $1`,
        [sent.id],
      );
      assert.deepEqual(rows, [{ topic: 'orders', msg_key: 'k-1', state: 0 }]);
      const ssl = await store.db.query<{ ssl: boolean; version: string }>(
        'select ssl, version from pg_stat_ssl where pid = pg_backend_pid()',
      );
      assert.equal(ssl.rows[0]?.ssl, true);
      assert.match(ssl.rows[0]?.version ?? '', /^TLSv1\.[23]$/);

      // The LISTEN connection is a separate client made from the pool's options: it must be TLS too.
      let notified = 0;
      const unlisten = await store.db.listen('zl_tls_probe', (payload) => {
        if (payload === 'ping') notified++;
      });
      await store.db.query(`select pg_notify('zl_tls_probe', 'ping')`);
      await waitFor(() => notified > 0, { what: 'the notification over the TLS listener' });
      const clients = await store.db.query<{ ssl: boolean; listening: boolean }>(
        `select s.ssl, a.query ilike 'listen%' as listening from pg_stat_activity a join pg_stat_ssl s using (pid)
         where a.backend_type = 'client backend'`,
      );
      assert.ok(
        clients.rows.some((c) => c.listening),
        'the listener is among the connections',
      );
      assert.deepEqual(
        clients.rows.filter((c) => !c.ssl),
        [],
        'every connection of the store is encrypted',
      );
      await unlisten();
    } finally {
      await store.close();
    }
  });

  test('an untrusted CA is ZL_STORE_TLS, not retryable; the URL password appears in no error', async () => {
    const withPassword = `postgres://postgres:${PASSWORD}@${hostPort}/postgres?sslmode=verify-full&sslrootcert=${untrusted.certFile}`;
    const error = await failureOf(withPassword);
    assertTlsRefusal(error, 'SELF_SIGNED_CERT_IN_CHAIN');
    assert.match(error.message, /TLS to the database failed: self-signed certificate in certificate chain/);
    assert.ok(!inspect(error, { depth: Number.POSITIVE_INFINITY }).includes(PASSWORD), 'no password in the error or its causes');
    // The same for a server that is not there (the retryable kind of failure).
    const away = await failureOf(
      `postgres://postgres:${PASSWORD}@127.0.0.1:${await freePort()}/postgres?sslmode=verify-full&sslrootcert=${ca}`,
    );
    assert.ok(away instanceof ZerolossError && away.code === 'ZL_STORE_UNAVAILABLE' && away.retryable, inspect(away));
    assert.ok(!inspect(away, { depth: Number.POSITIVE_INFINITY }).includes(PASSWORD));
  });

  test("pg's sslmode, unlike libpq's: require verifies like verify-full; no-verify and uselibpqcompat=true skip the check", async () => {
    // libpq's require would encrypt without checking the certificate; pg checks it against sslrootcert,
    // or against Node's public CAs when there is none.
    assertTlsRefusal(await failureOf(url(`sslmode=require&sslrootcert=${untrusted.certFile}`)), 'SELF_SIGNED_CERT_IN_CHAIN');
    assertTlsRefusal(await failureOf(url('sslmode=require')), 'SELF_SIGNED_CERT_IN_CHAIN');
    assert.deepEqual(await sslOf(url(`sslmode=require&sslrootcert=${ca}`)), { ssl: true, user: 'postgres' });
    // Encrypted, unverified: pg's own mode, and libpq's require on request.
    assert.deepEqual(await sslOf(url('sslmode=no-verify')), { ssl: true, user: 'postgres' });
    assert.deepEqual(await sslOf(url('uselibpqcompat=true&sslmode=require')), { ssl: true, user: 'postgres' });
    // No sslmode at all is no TLS with pg (libpq's default, prefer, would try TLS first).
    assert.deepEqual(await sslOf(instance.url), { ssl: false, user: 'postgres' });
    assert.deepEqual(await sslOf(url('sslmode=disable')), { ssl: false, user: 'postgres' });
    // The host name is checked too: the certificate names 127.0.0.1 and localhost.
    const viaLocalhost = `postgres://postgres@localhost:${instance.port}/postgres?sslmode=verify-full&sslrootcert=${ca}`;
    assert.deepEqual(await sslOf(viaLocalhost), { ssl: true, user: 'postgres' });
  });

  test('sslcert and sslkey: a client certificate from the CA logs in; one from another CA is ZL_STORE_TLS', async () => {
    assert.ok(instance.tls);
    const user = instance.tls.certUser;
    const good = await signTestCertificate(dir, instance.tls.ca, 'client', { client: user });
    const bad = await signTestCertificate(dir, untrusted, 'client-untrusted', { client: user });
    const withCert = (c: { certFile: string; keyFile: string }) =>
      url(`sslmode=verify-full&sslrootcert=${ca}&sslcert=${c.certFile}&sslkey=${c.keyFile}`, user);
    assert.deepEqual(await sslOf(withCert(good)), { ssl: true, user });
    assertTlsRefusal(await failureOf(withCert(bad)), 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA');
    const none = await failureOf(url(`sslmode=verify-full&sslrootcert=${ca}`, user));
    assert.match((none as Error).message, /requires a valid client certificate/);
  });

  test('the CLI passes --pg through with its TLS parameters: migrate, status and relay --once; an untrusted CA exits 1 with ZL_STORE_TLS', async () => {
    const schema = uniqueId('zltlscli').replaceAll('-', '_');
    const topic = uniqueId('zl-tls');
    const migrated = await cli(['migrate', '--pg', verified(), '--schema', schema, '--json']);
    assert.equal(migrated.code, 0, migrated.stderr);
    // A URL without a user goes through the CLI's default-user rewrite: its query must survive that.
    const noUser = `postgres://${hostPort}/postgres?sslmode=verify-full&sslrootcert=${ca}`;
    const status = await cli(['status', '--pg', noUser, '--schema', schema, '--json']);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(typeof JSON.parse(status.stdout), 'object');

    // The relay claims, sends and records over TLS (--once drains without LISTEN; the first test covers that).
    await createTopics([topic], 1);
    const store = postgres(verified(), { schema });
    try {
      const outbox = createOutbox({ store, producerId: 'tls-cli' });
      const sent = await store.transaction((tx) => outbox.enqueue(tx, { topic, key: 'k', type: 't', payload: { n: 1 } }));
      const relay = await cli(['relay', '--pg', verified(), '--schema', schema, '--kafka', BROKERS.join(','), '--once']);
      assert.equal(relay.code, 0, relay.stderr);
      const { rows } = await store.db.query<{ state: number }>(`select state from ${schema}.outbox where message_id = $1`, [sent.id]);
      assert.deepEqual(rows, [{ state: 1 }], 'sent by the relay over TLS');
    } finally {
      await store.close();
    }

    const refused = await cli([
      'migrate',
      '--pg',
      `postgres://postgres:${PASSWORD}@${hostPort}/postgres?sslmode=verify-full&sslrootcert=${untrusted.certFile}`,
      '--schema',
      schema,
    ]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /ZL_STORE_TLS/);
    assert.ok(!`${refused.stdout}${refused.stderr}`.includes(PASSWORD), 'the CLI prints no password');
  });
});
