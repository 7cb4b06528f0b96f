import { execFile } from 'node:child_process';
import { generateKeyPair as generateKeyPairCallback } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { TestbedError } from './errors.ts';

const run = promisify(execFile);
const generateKeyPair = promisify(generateKeyPairCallback);

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (error) {
    throw new TestbedError('CAUSEWAY_TESTBED_START_FAILED', `openssl ${args[0]} failed`, { cause: error });
  }
}

/** Files of a throwaway CA and one serving certificate signed by it (PEM, in `dir`). */
export interface ServingCertificates {
  readonly caCert: string;
  readonly caKey: string;
  readonly serverCert: string;
  readonly serverKey: string;
}

/**
 * A P-256 CA and a serving certificate for loopback (IP 127.0.0.1, DNS localhost), made
 * with the openssl command. Test-bed only: the product's PKI lives in libs/pki.
 */
export async function makeServingCertificates(dir: string, commonName: string): Promise<ServingCertificates> {
  const files = {
    caCert: path.join(dir, 'ca.crt'),
    caKey: path.join(dir, 'ca.key'),
    serverCert: path.join(dir, 'server.crt'),
    serverKey: path.join(dir, 'server.key'),
  };
  const ext = path.join(dir, 'server.ext');
  await writeFile(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc',
    ].join('\n'),
  );
  await openssl(
    ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', files.caKey],
    dir,
  );
  await openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      files.caKey,
      '-subj',
      `/CN=${commonName} test CA`,
      '-days',
      '30',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-out',
      files.caCert,
    ],
    dir,
  );
  await openssl(
    ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', files.serverKey],
    dir,
  );
  const csr = path.join(dir, 'server.csr');
  await openssl(['req', '-new', '-key', files.serverKey, '-subj', `/CN=${commonName}`, '-out', csr], dir);
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      files.caCert,
      '-CAkey',
      files.caKey,
      '-CAcreateserial',
      '-days',
      '30',
      '-extfile',
      ext,
      '-out',
      files.serverCert,
    ],
    dir,
  );
  return files;
}

/** An RSA key pair for signing service-account tokens (private and public PEM files). */
export async function makeServiceAccountKeys(
  dir: string,
): Promise<{ privateKey: string; publicKey: string }> {
  const pair = await generateKeyPair('rsa', { modulusLength: 2048 });
  const privateKey = path.join(dir, 'sa.key');
  const publicKey = path.join(dir, 'sa.pub');
  await writeFile(privateKey, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await writeFile(publicKey, pair.publicKey.export({ type: 'spki', format: 'pem' }));
  return { privateKey, publicKey };
}
