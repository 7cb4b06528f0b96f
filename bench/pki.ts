import { sign } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  createCsr,
  createRootCa,
  generateKeyPair,
  issueIntermediateCa,
  issueWorkloadCertificate,
  loadCertificateAuthority,
  parseCsr,
  parseSpiffeId,
  workloadSpiffeId,
  type KeyType,
} from '@causeway/pki';
import { report } from './report.ts';

/**
 * What one controller does per workload certificate: verify the CSR's self-signature,
 * read its SPIFFE ID, build and sign the certificate. Key generation is the proxy's work
 * and is excluded. The baseline is bare signing with the same key in the same run.
 */
export async function pkiBench(options: { json?: boolean; count: number; keyType: KeyType }): Promise<void> {
  const trustDomain = 'bench.test';
  const root = await createRootCa({ trustDomain, keyType: options.keyType });
  const intermediateKeys = await generateKeyPair(options.keyType);
  const intermediate = loadCertificateAuthority(
    issueIntermediateCa(root, { trustDomain, cluster: 'east', publicKey: intermediateKeys.publicKey }),
    intermediateKeys.privateKey,
  );
  process.stderr.write(`preparing ${options.count} CSRs (${options.keyType})...\n`);
  const csrs: string[] = [];
  for (let i = 0; i < options.count; i++) {
    const keys = await generateKeyPair(options.keyType);
    csrs.push(createCsr({ ...keys, uri: workloadSpiffeId(trustDomain, 'bench', `sa-${i}`) }));
  }

  const baselineStart = performance.now();
  const payload = Buffer.alloc(512, 1);
  for (let i = 0; i < options.count; i++) sign('sha256', payload, intermediate.privateKey);
  const baselineSeconds = (performance.now() - baselineStart) / 1000;

  const start = performance.now();
  for (const pem of csrs) {
    const csr = parseCsr(pem);
    const id = parseSpiffeId(csr.uris[0]!);
    if (id.kind !== 'workload') throw new Error('unexpected identity');
    issueWorkloadCertificate(intermediate, {
      trustDomain,
      namespace: id.namespace,
      serviceAccount: id.serviceAccount,
      publicKey: csr.publicKey,
    });
  }
  const seconds = (performance.now() - start) / 1000;
  const certsPerSecond = options.count / seconds;
  const signsPerSecond = options.count / baselineSeconds;
  report(
    {
      bench: 'pki',
      key_type: options.keyType,
      certs: options.count,
      certs_per_s: Math.round(certsPerSecond),
      baseline_signatures_per_s: Math.round(signsPerSecond),
      ratio_vs_bare_signing: Number((certsPerSecond / signsPerSecond).toFixed(3)),
    },
    [
      ['key type', options.keyType],
      ['certificates', String(options.count)],
      ['certificates/s (CSR verify + issue)', certsPerSecond.toFixed(0)],
      ['bare signatures/s (same key)', signsPerSecond.toFixed(0)],
      ['ratio', (certsPerSecond / signsPerSecond).toFixed(3)],
    ],
    options.json ?? false,
  );
}
