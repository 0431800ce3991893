import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { KafkaSaslOptions, KafkaTlsOptions } from '../adapters/kafka/kafka-connection.ts';
import { ZerolossError } from '../core/errors.ts';
import type { Options } from './args.ts';
import { readSettingsFile } from './settings-file.ts';

/**
 * How every command reaches a secured Kafka: flags, then environment variables, then the `kafka` section of
 * the `--config` file. Secrets are never flag values (they would show in `ps`): a password or token comes
 * from a file, an environment variable or the config file, and certificates are file paths.
 */
export const kafkaSecurityOptions = {
  'config-file': { type: 'string' },
  'kafka-tls': { type: 'boolean' },
  'kafka-ca': { type: 'string' },
  'kafka-cert': { type: 'string' },
  'kafka-key': { type: 'string' },
  'kafka-servername': { type: 'string' },
  'kafka-insecure': { type: 'boolean' },
  'kafka-sasl': { type: 'string' },
  'kafka-username': { type: 'string' },
  'kafka-password-file': { type: 'string' },
  'kafka-token-file': { type: 'string' },
} as const satisfies Options;

export const kafkaSecurityHelp = `  --config-file <f.json>   settings file (--config for short); its "kafka" section: { brokers, tls:
                           { ca, cert, key, servername, rejectUnauthorized }, sasl: { mechanism, username, password |
                           passwordFile, tokenFile } } (paths relative to the file); flags and
                           environment variables take precedence. Its "sources" section declares
                           business tables with their own send-state column (relay, status, parked;
                           docs/operations.md)
  --kafka-tls              connect with TLS, trusting the system CAs (or ZL_KAFKA_TLS=1)
  --kafka-ca <file>        PEM CA bundle to trust (implies TLS; or ZL_KAFKA_CA)
  --kafka-cert <file>      PEM client certificate (or ZL_KAFKA_CERT); --kafka-key <file> its key (ZL_KAFKA_KEY)
  --kafka-servername <n>   TLS server name to verify (or ZL_KAFKA_SERVERNAME)
  --kafka-insecure         do not verify the broker's certificate (testing only)
  --kafka-sasl <mech>      PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512 | OAUTHBEARER (or ZL_KAFKA_SASL_MECHANISM)
  --kafka-username <name>  SASL user (or ZL_KAFKA_USERNAME)
  --kafka-password-file <f> file holding the SASL password (or ZL_KAFKA_PASSWORD / ZL_KAFKA_PASSWORD_FILE);
                           never a flag value, so it stays out of \`ps\`
  --kafka-token-file <f>   OAUTHBEARER token file, re-read at every authentication (or ZL_KAFKA_TOKEN_FILE)`;

type Values = { [K in keyof typeof kafkaSecurityOptions]?: (typeof kafkaSecurityOptions)[K]['type'] extends 'boolean' ? boolean : string };

export interface KafkaConnection {
  brokers: string[] | undefined;
  tls: KafkaTlsOptions | boolean | undefined;
  sasl: KafkaSaslOptions | undefined;
}

const MECHANISMS = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512', 'OAUTHBEARER'] as const;

/**
 * Resolves brokers, TLS and SASL for `kafka({ … })`. Certificates are read now (a missing file is a clear
 * error at start, not at the first connection); a token file is re-read at every authentication so an
 * external refresher can rotate it.
 */
export function kafkaConnection(values: Values, env: NodeJS.ProcessEnv = process.env): KafkaConnection {
  const { kafka: file, dir } = readSettingsFile(values['config-file']);
  const fromFile = (p: string | undefined) => (p === undefined ? undefined : path.resolve(dir, p));
  const fileTls = typeof file.tls === 'object' ? file.tls : {};
  const ca = values['kafka-ca'] ?? env.ZL_KAFKA_CA ?? fromFile(fileTls.ca);
  const cert = values['kafka-cert'] ?? env.ZL_KAFKA_CERT ?? fromFile(fileTls.cert);
  const key = values['kafka-key'] ?? env.ZL_KAFKA_KEY ?? fromFile(fileTls.key);
  const servername = values['kafka-servername'] ?? env.ZL_KAFKA_SERVERNAME ?? fileTls.servername;
  const insecure = values['kafka-insecure'] === true || fileTls.rejectUnauthorized === false;
  const wantsTls =
    values['kafka-tls'] === true || env.ZL_KAFKA_TLS === '1' || file.tls === true || typeof file.tls === 'object' || ca !== undefined;
  let tls: KafkaTlsOptions | boolean | undefined;
  if (wantsTls || cert !== undefined || key !== undefined) {
    const options: KafkaTlsOptions = {};
    if (ca !== undefined) options.ca = pem(ca, 'CA');
    if (cert !== undefined) options.cert = pem(cert, 'client certificate');
    if (key !== undefined) options.key = pem(key, 'client key');
    if (servername !== undefined) options.servername = servername;
    if (insecure) options.rejectUnauthorized = false;
    tls = Object.keys(options).length === 0 ? true : options;
  }

  const mechanism = (values['kafka-sasl'] ?? env.ZL_KAFKA_SASL_MECHANISM ?? file.sasl?.mechanism)?.toUpperCase();
  let sasl: KafkaSaslOptions | undefined;
  if (mechanism !== undefined) {
    if (!(MECHANISMS as readonly string[]).includes(mechanism)) {
      throw new ZerolossError('ZL_INVALID_CONFIG', `--kafka-sasl must be one of ${MECHANISMS.join(', ')}`, {
        details: { field: 'kafka-sasl' },
      });
    }
    if (mechanism === 'OAUTHBEARER') {
      const tokenFile = values['kafka-token-file'] ?? env.ZL_KAFKA_TOKEN_FILE ?? fromFile(file.sasl?.tokenFile);
      const token = file.sasl?.token;
      if (tokenFile === undefined && token === undefined) {
        throw new ZerolossError('ZL_INVALID_CONFIG', 'OAUTHBEARER needs --kafka-token-file (or ZL_KAFKA_TOKEN_FILE, or sasl.tokenFile)', {
          details: { field: 'kafka-token-file' },
        });
      }
      sasl = { mechanism, token: tokenFile !== undefined ? async () => (await readFile(tokenFile, 'utf8')).trim() : (token as string) };
    } else {
      const username = values['kafka-username'] ?? env.ZL_KAFKA_USERNAME ?? file.sasl?.username;
      const passwordFile = values['kafka-password-file'] ?? env.ZL_KAFKA_PASSWORD_FILE ?? fromFile(file.sasl?.passwordFile);
      const password =
        passwordFile !== undefined ? secretFile(passwordFile, 'kafka-password-file') : (env.ZL_KAFKA_PASSWORD ?? file.sasl?.password);
      if (username === undefined || password === undefined) {
        throw new ZerolossError(
          'ZL_INVALID_CONFIG',
          `${mechanism} needs a user and a password: --kafka-username and --kafka-password-file (or ZL_KAFKA_USERNAME and ZL_KAFKA_PASSWORD)`,
          { details: { field: username === undefined ? 'kafka-username' : 'kafka-password-file' } },
        );
      }
      sasl = { mechanism: mechanism as 'PLAIN', username, password };
    }
  }
  const listed = file.brokers;
  const brokers = listed === undefined ? undefined : Array.isArray(listed) ? listed : listed.split(',').map((b) => b.trim());
  return { brokers, tls, sasl };
}

function pem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      `cannot read the ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`,
      {
        details: { field: what },
      },
    );
  }
}

function secretFile(file: string, field: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      `cannot read --${field} ${file}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`,
      {
        details: { field },
      },
    );
  }
}

/**
 * Everything `kafka({ … })` needs from the command line: brokers from --kafka, ZEROLOSS_KAFKA_BROKERS or the
 * config file, and TLS and SASL as above.
 */
export function kafkaSettings(
  values: Values & { kafka?: string },
  env: NodeJS.ProcessEnv = process.env,
): { brokers: string[]; tls?: KafkaTlsOptions | boolean; sasl?: KafkaSaslOptions } {
  const connection = kafkaConnection(values, env);
  const listed = values.kafka ?? env.ZEROLOSS_KAFKA_BROKERS;
  const brokers =
    listed !== undefined
      ? listed
          .split(',')
          .map((b) => b.trim())
          .filter(Boolean)
      : connection.brokers;
  if (!brokers || brokers.length === 0) {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      'no Kafka: pass --kafka <host:port,...>, set ZEROLOSS_KAFKA_BROKERS or kafka.brokers in --config-file',
      {
        details: { field: 'kafka' },
      },
    );
  }
  return {
    brokers,
    ...(connection.tls !== undefined ? { tls: connection.tls } : {}),
    ...(connection.sasl !== undefined ? { sasl: connection.sasl } : {}),
  };
}
