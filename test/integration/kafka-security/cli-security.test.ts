/**
 * The CLI reaches the secured broker the documented ways (flags, environment, --config-file) and fails
 * clearly when it is refused: `zeroloss relay` exits 78 with ZL_KAFKA_AUTH / ZL_KAFKA_TLS within 10 s and
 * prints no secret.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { downSecured, SECURED, upSecured } from '../../../infra/kafka/secured.ts';
import { kafka } from '../../../src/entry/kafka.ts';
import { postgres } from '../../../src/entry/postgres.ts';
import { createOutbox, MESSAGE_STATE } from '../../../src/index.ts';
import { uniqueTopic } from '../../helpers/kafka.ts';
import { PG_URL, uniqueName } from '../../helpers/pg.ts';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));
const WRONG = 'zl-cli-wrong-Pw-19a7';
let startedHere = false;
let dir: string;

before(async () => {
  startedHere = (await upSecured()).startedHere;
  dir = mkdtempSync(path.join(tmpdir(), 'zl-cli-sec-'));
});

after(async () => {
  rmSync(dir, { recursive: true, force: true });
  if (startedHere && !process.env.ZL_KAFKA_BROKERS && !process.env.ZL_KEEP_KAFKA) await downSecured();
});

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, ms: Date.now() - started });
    });
  });
}

/** A schema with one enqueued row for a fresh topic on the secured broker. */
async function oneRow(): Promise<{
  schema: string;
  topic: string;
  state: () => Promise<number>;
  attempts: () => Promise<number>;
  drop: () => Promise<void>;
}> {
  const schema = uniqueName('zlclisec');
  const topic = uniqueTopic('cli-secured');
  const store = postgres(PG_URL, { schema });
  await store.migrate();
  const admin = kafka({
    brokers: [...SECURED.saslPlaintext],
    sasl: { mechanism: 'PLAIN', ...SECURED.users.plain },
  });
  await admin.ensureTopic(topic, 1);
  await admin.close();
  const outbox = createOutbox({ store, producerId: 'cli-sec' });
  await store.transaction((tx) => outbox.enqueue(tx, { topic, key: 'k', type: 't', payload: { n: 1 } }));
  return {
    schema,
    topic,
    state: async () => Number((await store.db.query<{ state: number }>(`select state from ${schema}.outbox`)).rows[0]?.state),
    attempts: async () => Number((await store.db.query<{ n: number }>(`select attempts as n from ${schema}.outbox`)).rows[0]?.n),
    drop: async () => {
      await store.db.query(`drop schema if exists "${schema}" cascade`);
      await store.close();
    },
  };
}

test('relay over SASL_SSL with SCRAM-SHA-512 from a --config-file (password in a file beside it) sends the row', async () => {
  const row = await oneRow();
  try {
    writeFileSync(path.join(dir, 'scram.pw'), `${SECURED.users.scram512.password}\n`, { mode: 0o600 });
    const config = path.join(dir, 'zeroloss.json');
    writeFileSync(
      config,
      JSON.stringify({
        kafka: {
          brokers: SECURED.saslSsl,
          tls: { ca: SECURED.certs.ca },
          sasl: { mechanism: 'SCRAM-SHA-512', username: SECURED.users.scram512.username, passwordFile: 'scram.pw' },
        },
      }),
    );
    const result = await run(['relay', '--pg', PG_URL, '--schema', row.schema, '--config-file', config, '--once']);
    assert.equal(result.code, 0, result.out);
    assert.equal(await row.state(), MESSAGE_STATE.sent);
  } finally {
    await row.drop();
  }
});

test('relay over SASL_PLAINTEXT with PLAIN from flags and the environment sends the row', async () => {
  const row = await oneRow();
  try {
    const result = await run(
      ['relay', '--pg', PG_URL, '--schema', row.schema, '--kafka', SECURED.saslPlaintext.join(','), '--kafka-sasl', 'plain', '--once'],
      { ZL_KAFKA_USERNAME: SECURED.users.plain.username, ZL_KAFKA_PASSWORD: SECURED.users.plain.password },
    );
    assert.equal(result.code, 0, result.out);
    assert.equal(await row.state(), MESSAGE_STATE.sent);
  } finally {
    await row.drop();
  }
});

test('a wrong password: relay exits 78 with ZL_KAFKA_AUTH within 10 s, the row unsent and uncharged, no password printed', async () => {
  const row = await oneRow();
  try {
    const result = await run(
      ['relay', '--pg', PG_URL, '--schema', row.schema, '--kafka', SECURED.saslPlaintext.join(','), '--kafka-sasl', 'SCRAM-SHA-256'],
      { ZL_KAFKA_USERNAME: SECURED.users.scram256.username, ZL_KAFKA_PASSWORD: WRONG },
    );
    assert.equal(result.code, 78, result.out);
    assert.match(result.out, /ZL_KAFKA_AUTH/);
    assert.ok(result.ms < 10_000 + 5_000, `refused after ${result.ms} ms (process start included)`);
    assert.ok(!result.out.includes(WRONG), 'the password is not printed');
    assert.notEqual(await row.state(), MESSAGE_STATE.sent);
    assert.equal(await row.attempts(), 0, 'a refusal is not charged to the row');
  } finally {
    await row.drop();
  }
});

test('an untrusted CA: relay exits 78 with ZL_KAFKA_TLS within 10 s', async () => {
  const row = await oneRow();
  try {
    writeFileSync(path.join(dir, 'scram.pw'), SECURED.users.scram512.password, { mode: 0o600 });
    const result = await run([
      'relay',
      '--pg',
      PG_URL,
      '--schema',
      row.schema,
      '--kafka',
      SECURED.saslSsl.join(','),
      '--kafka-ca',
      SECURED.certs.otherCa,
      '--kafka-sasl',
      'SCRAM-SHA-512',
      '--kafka-username',
      SECURED.users.scram512.username,
      '--kafka-password-file',
      path.join(dir, 'scram.pw'),
      '--once',
    ]);
    assert.equal(result.code, 78, result.out);
    assert.match(result.out, /ZL_KAFKA_TLS/);
    assert.ok(result.ms < 15_000, `refused after ${result.ms} ms (process start included)`);
    assert.ok(!result.out.includes(SECURED.users.scram512.password));
  } finally {
    await row.drop();
  }
});

test('--help shows the security flags and no secret from the environment', async () => {
  const result = await run(['relay', '--help'], { ZL_KAFKA_PASSWORD: WRONG });
  assert.equal(result.code, 0);
  assert.match(result.out, /--kafka-sasl/);
  assert.match(result.out, /--config-file/);
  assert.ok(!result.out.includes(WRONG));
});
