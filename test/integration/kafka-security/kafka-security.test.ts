/**
 * zeroloss against the secured test broker (infra/kafka/secured.ts, started once and reused; `npm test`
 * stops it at the end if it started during the run): a 1,000-message relay → consumer round trip over
 * SASL_SSL with SCRAM-SHA-512 and SCRAM-SHA-256, over SASL_PLAINTEXT with PLAIN, and with OAUTHBEARER; a
 * wrong password and an untrusted CA give ZL_KAFKA_AUTH / ZL_KAFKA_TLS within 10 s; no secret in any of it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { inspect } from 'node:util';
import { downSecured, SECURED, upSecured } from '../../../infra/kafka/secured.ts';
import { describeKafkaConnection } from '../../../src/adapters/kafka/kafka-connection.ts';
import { errorSummary, type ZerolossError } from '../../../src/core/errors.ts';
import { kafka, type KafkaOptions } from '../../../src/entry/kafka.ts';
import { postgres } from '../../../src/entry/postgres.ts';
import { createConsumer, createOutbox, createRelay, MESSAGE_STATE } from '../../../src/index.ts';
import { uniqueTopic } from '../../helpers/kafka.ts';
import { PG_URL, uniqueName } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const MESSAGES = 1_000;
const WRONG_PASSWORD = 'zl-wrong-Pw-e81d44';
/** Everything a test captured that a user could see: errors (inspected whole), config echoes. Checked last. */
const captured: string[] = [];
let ca: Buffer;
let startedHere = false;

/** An unsigned JWS (alg none) with sub and exp: what Kafka's unsecured OAUTHBEARER validator accepts. */
function unsecuredToken(subject: string): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${part({ alg: 'none' })}.${part({ sub: subject, iat: now, exp: now + 3600 })}.`;
}

function capture(value: unknown): void {
  captured.push(inspect(value, { depth: 20 }));
  if (value instanceof Error) captured.push(errorSummary(value), String(value), value.stack ?? '');
}

before(async () => {
  startedHere = (await upSecured()).startedHere;
  ca = readFileSync(SECURED.certs.ca);
});

after(async () => {
  // scripts/test.ts stops it after the whole run; a file run alone (node --test) stops what it started.
  if (startedHere && !process.env.ZL_KAFKA_BROKERS && !process.env.ZL_KEEP_KAFKA) await downSecured();
});

async function roundTrip(options: Omit<KafkaOptions, 'publisher' | 'subscriber' | 'inspector'>): Promise<void> {
  const schema = uniqueName('zlsec');
  const topic = uniqueTopic('secured');
  const store = postgres(PG_URL, { schema });
  const transport = kafka(options);
  capture(transport.subscriber);
  capture(transport.publisher.settings);
  try {
    await store.migrate();
    await transport.ensureTopic(topic, 3);
    await store.db.query(`create table ${schema}.effect (id int primary key)`);
    const outbox = createOutbox({ store, producerId: 'secured-test' });
    for (let start = 0; start < MESSAGES; start += 250) {
      await store.transaction(async (tx) => {
        for (let i = start; i < start + 250; i++) await outbox.enqueue(tx, { topic, key: `k${i % 17}`, type: 'n.made', payload: { i } });
      });
    }
    const relay = createRelay({ store, transport });
    const consumer = createConsumer({ store, transport, groupId: uniqueName('g'), topics: [topic] });
    consumer.handle<{ i: number }>('n.made', async (message, { tx }) => {
      await tx.query(`insert into ${schema}.effect (id) values ($1)`, [message.payload.i]);
    });
    relay.on('error', capture);
    consumer.on('error', capture);
    await relay.start();
    await consumer.start();
    try {
      await waitFor(async () => (await store.db.query(`select count(*)::int as n from ${schema}.effect`)).rows[0]?.n === MESSAGES, {
        timeoutMs: 60_000,
        what: `${MESSAGES} effects`,
      });
    } finally {
      await consumer.stop();
      await relay.stop();
    }
  } finally {
    await transport.close();
    await store.db.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
    await store.close();
  }
}

// Each round trip and each refusal has its own schema, topic and group: they run side by side to keep the file short.
describe('1,000-message round trips', { concurrency: true }, () => {
  test('SASL_SSL with SCRAM-SHA-512: 1,000 messages relayed and consumed once each', async () => {
    await roundTrip({ brokers: [...SECURED.saslSsl], tls: { ca }, sasl: { mechanism: 'SCRAM-SHA-512', ...SECURED.users.scram512 } });
  });

  test('SASL_SSL with SCRAM-SHA-256, the password from a function: 1,000 messages', async () => {
    const { username, password } = SECURED.users.scram256;
    await roundTrip({
      brokers: [...SECURED.saslSsl],
      tls: { ca, servername: 'localhost' },
      sasl: { mechanism: 'SCRAM-SHA-256', username, password: async () => password },
    });
  });

  test('SASL_PLAINTEXT with PLAIN: 1,000 messages', async () => {
    await roundTrip({ brokers: [...SECURED.saslPlaintext], sasl: { mechanism: 'PLAIN', ...SECURED.users.plain } });
  });

  test('OAUTHBEARER (SASL_SSL, a token function): 1,000 messages', async () => {
    await roundTrip({
      brokers: [...SECURED.saslSsl],
      tls: { ca },
      sasl: { mechanism: 'OAUTHBEARER', token: () => unsecuredToken('zeroloss-oauth') },
    });
  });
});

/**
 * A relay and a consumer whose connection the broker refuses: the relay reports `code` as an 'error' event
 * and leaves the row unparked and uncharged; the consumer's start rejects with it. Both within 10 s.
 */
async function refused(options: Omit<KafkaOptions, 'publisher' | 'subscriber' | 'inspector'>, code: ZerolossError['code']): Promise<void> {
  const schema = uniqueName('zlsecx');
  const store = postgres(PG_URL, { schema });
  const transport = kafka(options);
  capture(transport.subscriber);
  capture(describeKafkaConnection(options));
  try {
    await store.migrate();
    const outbox = createOutbox({ store, producerId: 'secured-refused' });
    await store.transaction((tx) => outbox.enqueue(tx, { topic: 'never-reached', key: 'k', type: 'n.made', payload: {} }));
    const relay = createRelay({ store, transport });
    const errors: ZerolossError[] = [];
    relay.on('error', (error) => {
      capture(error);
      errors.push(error as ZerolossError);
    });
    const t0 = Date.now();
    await relay.start();
    try {
      const error = await waitFor(() => errors.find((e) => e.code === code), { timeoutMs: 10_000, what: `relay error ${code}` });
      assert.equal(error.retryable, false);
      assert.ok(Date.now() - t0 < 10_000);
    } finally {
      await relay.stop();
    }
    const rows = await store.db.query(`select state from ${schema}.outbox`);
    assert.notEqual(rows.rows[0]?.state, MESSAGE_STATE.parked, 'a refused connection is no fault of the row: it must not be parked');

    const consumer = createConsumer({ store, transport, groupId: uniqueName('g'), topics: ['never-reached'] });
    consumer.handle('n.made', async () => {});
    consumer.on('error', capture);
    const t1 = Date.now();
    await assert.rejects(consumer.start(), (error: ZerolossError) => {
      capture(error);
      assert.equal(error.code, code, error.message);
      return true;
    });
    assert.ok(Date.now() - t1 < 10_000, `consumer start failed after ${Date.now() - t1} ms`);
    await consumer.stop().catch(() => {});
  } finally {
    await transport.close();
    await store.db.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
    await store.close();
  }
}

describe('refused connections', { concurrency: true }, () => {
  test('a wrong password gives ZL_KAFKA_AUTH within 10 s, from the relay and the consumer', async () => {
    await refused(
      {
        brokers: [...SECURED.saslSsl],
        tls: { ca },
        sasl: { mechanism: 'SCRAM-SHA-512', username: SECURED.users.scram512.username, password: WRONG_PASSWORD },
      },
      'ZL_KAFKA_AUTH',
    );
  });

  test('an untrusted CA gives ZL_KAFKA_TLS within 10 s, from the relay and the consumer', async () => {
    await refused(
      {
        brokers: [...SECURED.saslSsl],
        tls: { ca: readFileSync(SECURED.certs.otherCa) },
        sasl: { mechanism: 'SCRAM-SHA-512', ...SECURED.users.scram512 },
      },
      'ZL_KAFKA_TLS',
    );
  });
});

test('a misspelt or misplaced secret is refused by the field name, never echoed', () => {
  for (const sasl of [
    { mechanism: 'PLAIN', username: 'u', pasword: WRONG_PASSWORD },
    { mechanism: 'SCRAM-SHA-999', username: 'u', password: WRONG_PASSWORD },
    { mechanism: 'OAUTHBEARER', token: 42, password: WRONG_PASSWORD },
  ]) {
    assert.throws(
      () => kafka({ brokers: [...SECURED.saslSsl], sasl: sasl as never }),
      (error: ZerolossError) => {
        capture(error);
        return error.code === 'ZL_INVALID_CONFIG';
      },
    );
  }
  assert.throws(
    () =>
      kafka({
        brokers: [...SECURED.saslSsl],
        publisher: { sasl: { mechanism: 'PLAIN', username: 'u', password: WRONG_PASSWORD } } as never,
      }),
    (error: ZerolossError) => {
      capture(error);
      return error.code === 'ZL_INVALID_CONFIG' && /publisher\.sasl/.test(error.message);
    },
  );
});

test('no password, token or key appears in anything captured above', () => {
  assert.ok(captured.length > 10, `captured ${captured.length} items`);
  const text = captured.join('\n');
  const secrets = [WRONG_PASSWORD, ...Object.values(SECURED.users).map((u) => u.password), 'PRIVATE KEY'];
  for (const secret of secrets) assert.ok(!text.includes(secret), `a secret (${secret.slice(0, 6)}…) leaked into errors or config echoes`);
});
