import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * A throwaway PKI for TLS tests, made with openssl at test time: EC P-256 keys (generated instantly),
 * valid for two days, never checked in. Nothing here is secret beyond the test that made it.
 */
const run = promisify(execFile);
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export interface TestCa {
  /** PEM certificate: what a client passes as `sslrootcert` to trust this CA. */
  certFile: string;
  keyFile: string;
}

export interface TestCertificate {
  certFile: string;
  keyFile: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir, timeout: 30_000 });
}

/** A self-signed CA `<name>.pem` / `<name>.key` in `dir`. */
export async function createTestCa(dir: string, name: string, commonName: string): Promise<TestCa> {
  const [certFile, keyFile] = [join(dir, `${name}.pem`), join(dir, `${name}.key`)];
  await openssl(dir, ['req', '-x509', ...EC, '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${commonName}`]);
  return { certFile, keyFile };
}

/**
 * A certificate `<name>.crt` / `<name>.key` in `dir` signed by `ca`. A server certificate names
 * 127.0.0.1 and localhost both as CN and as subjectAltName (TLS clients check the SAN; Node does for an IP
 * host too). A client certificate's CN is the database user it logs in as (`cert` authentication).
 */
export async function signTestCertificate(
  dir: string,
  ca: TestCa,
  name: string,
  use: { server: true } | { client: string },
): Promise<TestCertificate> {
  const file = (suffix: string) => join(dir, `${name}.${suffix}`);
  const [certFile, keyFile, csr, ext] = [file('crt'), file('key'), file('csr'), file('ext')];
  const commonName = 'server' in use ? '127.0.0.1' : use.client;
  writeFileSync(
    ext,
    'server' in use ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' : 'extendedKeyUsage=clientAuth\n',
  );
  await openssl(dir, ['req', ...EC, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${commonName}`]);
  const signer = ['-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial'];
  await openssl(dir, ['x509', '-req', '-in', csr, ...signer, '-days', '2', '-out', certFile, '-extfile', ext]);
  return { certFile, keyFile };
}
