import type { ConnectionOptions as NodeTlsOptions } from 'node:tls';
import { ZerolossError } from '../../core/errors.ts';

/** PEM text or bytes, or several (a CA bundle split in files). */
export type Pem = string | Buffer | Array<string | Buffer>;

/** A secret given as is, or a function asked each time a connection authenticates (rotation without a restart). */
export type Secret = string | (() => string | Promise<string>);

/** TLS towards the brokers. `tls: true` (or `{}`) trusts the system CAs, like a managed Kafka with a public certificate needs. */
export interface KafkaTlsOptions {
  /** CAs to trust instead of the system ones. */
  ca?: Pem;
  /** Client certificate and its key, for brokers that authenticate clients by certificate (mTLS). */
  cert?: Pem;
  key?: Pem;
  /** Passphrase of an encrypted `key`. */
  passphrase?: string;
  /** The name the broker's certificate must carry (SNI and verification), when it differs from the host dialled. */
  servername?: string;
  /** false accepts any certificate: for a lab only, never in production. Default true. */
  rejectUnauthorized?: boolean;
}

export type KafkaSaslOptions =
  | { mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'; username: string; password: Secret }
  | {
      mechanism: 'OAUTHBEARER';
      /** Returns a current access token (a JWT); asked on every (re)authentication, so it may refresh. */
      token: Secret;
      /** SASL extensions some brokers require (e.g. Confluent Cloud's logicalCluster and identityPoolId). */
      extensions?: Record<string, string>;
    };

/** How every Kafka client of zeroloss reaches the cluster. */
export interface KafkaConnectionOptions {
  brokers: string[];
  tls?: KafkaTlsOptions | boolean;
  sasl?: KafkaSaslOptions;
}

/** The part of @platformatic/kafka's client options that says where and how to connect. */
export interface KafkaClientConnection {
  bootstrapBrokers: string[];
  tls?: NodeTlsOptions;
  sasl?: {
    mechanism: KafkaSaslOptions['mechanism'];
    username?: string;
    password?: Secret;
    token?: Secret;
    oauthBearerExtensions?: Record<string, string>;
  };
}

const TLS_KEYS = new Set(['ca', 'cert', 'key', 'passphrase', 'servername', 'rejectUnauthorized']);
const SASL_KEYS: Record<KafkaSaslOptions['mechanism'], Set<string>> = {
  PLAIN: new Set(['mechanism', 'username', 'password']),
  'SCRAM-SHA-256': new Set(['mechanism', 'username', 'password']),
  'SCRAM-SHA-512': new Set(['mechanism', 'username', 'password']),
  OAUTHBEARER: new Set(['mechanism', 'token', 'extensions']),
};

/**
 * Checks `tls` and `sasl` and turns them into the client's connection options. Messages name the field
 * and what is wrong with it, never the value: a misplaced password must not end up in an error or a log.
 */
export function kafkaClientConnection(options: KafkaConnectionOptions, where = 'kafka'): KafkaClientConnection {
  const connection: KafkaClientConnection = { bootstrapBrokers: options.brokers };
  const tls = checkTls(options.tls, where);
  if (tls) connection.tls = tls;
  if (options.sasl !== undefined) connection.sasl = checkSasl(options.sasl, where);
  return connection;
}

function invalid(where: string, field: string, problem: string): ZerolossError {
  return new ZerolossError('ZL_INVALID_CONFIG', `${where} option ${field}: ${problem}`, { details: { field } });
}

function isPem(value: unknown): boolean {
  const one = (v: unknown) => (typeof v === 'string' && v.length > 0) || Buffer.isBuffer(v);
  return one(value) || (Array.isArray(value) && value.length > 0 && value.every(one));
}

function checkTls(tls: KafkaConnectionOptions['tls'], where: string): NodeTlsOptions | undefined {
  if (tls === undefined || tls === false) return undefined;
  if (tls === true) return {};
  if (tls === null || typeof tls !== 'object')
    throw invalid(where, 'tls', 'must be true or an object { ca?, cert?, key?, servername?, rejectUnauthorized? }');
  for (const key of Object.keys(tls)) {
    if (!TLS_KEYS.has(key)) throw invalid(where, `tls.${key}`, `unknown (known: ${[...TLS_KEYS].join(', ')})`);
  }
  for (const key of ['ca', 'cert', 'key'] as const) {
    if (tls[key] !== undefined && !isPem(tls[key])) throw invalid(where, `tls.${key}`, 'must be PEM text or bytes (read the file first)');
  }
  if ((tls.cert === undefined) !== (tls.key === undefined))
    throw invalid(where, tls.cert ? 'tls.key' : 'tls.cert', 'a client certificate needs both cert and key');
  if (tls.passphrase !== undefined && typeof tls.passphrase !== 'string') throw invalid(where, 'tls.passphrase', 'must be a string');
  if (tls.servername !== undefined && (typeof tls.servername !== 'string' || tls.servername.length === 0)) {
    throw invalid(where, 'tls.servername', 'must be a non-empty host name');
  }
  if (tls.rejectUnauthorized !== undefined && typeof tls.rejectUnauthorized !== 'boolean')
    throw invalid(where, 'tls.rejectUnauthorized', 'must be a boolean');
  return { ...tls };
}

function isSecret(value: unknown): boolean {
  return (typeof value === 'string' && value.length > 0) || typeof value === 'function';
}

function checkSasl(sasl: KafkaSaslOptions, where: string): NonNullable<KafkaClientConnection['sasl']> {
  if (sasl === null || typeof sasl !== 'object') throw invalid(where, 'sasl', 'must be an object { mechanism, ... }');
  const known = SASL_KEYS[sasl.mechanism];
  if (!known) throw invalid(where, 'sasl.mechanism', `must be one of ${Object.keys(SASL_KEYS).join(', ')}`);
  for (const key of Object.keys(sasl)) {
    if (!known.has(key)) throw invalid(where, `sasl.${key}`, `unknown for ${sasl.mechanism} (known: ${[...known].join(', ')})`);
  }
  if (sasl.mechanism === 'OAUTHBEARER') {
    if (!isSecret(sasl.token)) throw invalid(where, 'sasl.token', 'OAUTHBEARER needs a token or a function returning one');
    if (
      sasl.extensions !== undefined &&
      (typeof sasl.extensions !== 'object' || Object.values(sasl.extensions).some((v) => typeof v !== 'string'))
    ) {
      throw invalid(where, 'sasl.extensions', 'must map names to strings');
    }
    return { mechanism: sasl.mechanism, token: sasl.token, ...(sasl.extensions ? { oauthBearerExtensions: { ...sasl.extensions } } : {}) };
  }
  if (typeof sasl.username !== 'string' || sasl.username.length === 0)
    throw invalid(where, 'sasl.username', `${sasl.mechanism} needs a username`);
  if (!isSecret(sasl.password)) throw invalid(where, 'sasl.password', `${sasl.mechanism} needs a password or a function returning one`);
  return { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password };
}

/**
 * The connection as it may be shown (status output, config echoes, error details): brokers, whether TLS is
 * on and with which server name, the SASL mechanism and user. Passwords, tokens, keys and CA contents never.
 */
export function describeKafkaConnection(options: KafkaConnectionOptions): Record<string, unknown> {
  const tls = options.tls === undefined || options.tls === false ? false : options.tls === true ? {} : options.tls;
  return {
    brokers: options.brokers,
    tls:
      tls === false
        ? false
        : {
            ca: tls.ca === undefined ? 'system' : 'custom',
            clientCertificate: tls.cert !== undefined,
            ...(tls.servername ? { servername: tls.servername } : {}),
            ...(tls.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
          },
    sasl: options.sasl
      ? { mechanism: options.sasl.mechanism, ...('username' in options.sasl ? { username: options.sasl.username } : {}) }
      : false,
  };
}
