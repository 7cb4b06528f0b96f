import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { formatDuration, parseDuration } from '@causeway/config';
import {
  KEY_TYPES,
  keyTypeOf,
  PkiError,
  splitPemCertificates,
  TrustDirectory,
  uriSans,
  verifySvid,
  type KeyType,
  type VerifiedIdentity,
} from '@causeway/pki';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { bundleHash } from '@causeway/pki';
import { NatsTrustStore, rotateRoot } from '@causeway/trust';
import { formatTable } from './table.ts';

function duration(value: string): number {
  try {
    return parseDuration(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

function print(json: boolean | undefined, data: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(data)}\n` : `${human()}\n`);
}

/** A certificate as `inspect` shows it. */
interface CertificateSummary {
  subject: string;
  issuer: string;
  spiffeIds: string[];
  isCa: boolean;
  keyType: string;
  notBefore: string;
  notAfter: string;
  expiresIn: string;
  serial: string;
  sha256: string;
}

function summarize(certificate: X509Certificate): CertificateSummary {
  const left = new Date(certificate.validTo).getTime() - Date.now();
  return {
    subject: certificate.subject.replace(/\n/g, ', '),
    issuer: certificate.issuer.replace(/\n/g, ', '),
    spiffeIds: uriSans(certificate),
    isCa: certificate.ca,
    keyType: keyTypeOf(certificate.publicKey) ?? certificate.publicKey.asymmetricKeyType ?? 'unknown',
    notBefore: new Date(certificate.validFrom).toISOString(),
    notAfter: new Date(certificate.validTo).toISOString(),
    expiresIn: left > 0 ? formatDuration(left) : `expired ${formatDuration(-left)} ago`,
    serial: certificate.serialNumber,
    sha256: certificate.fingerprint256,
  };
}

function summaryTable(summaries: CertificateSummary[]): string {
  return summaries
    .map((s, index) =>
      formatTable(
        ['field', `certificate ${index + 1}${index === 0 ? ' (leaf)' : ''}`],
        [
          ['subject', s.subject],
          ['issuer', s.issuer],
          ['spiffe id', s.spiffeIds.join(' ') || '-'],
          ['ca', String(s.isCa)],
          ['key', s.keyType],
          ['valid', `${s.notBefore} .. ${s.notAfter} (${s.expiresIn})`],
          ['serial', s.serial],
          ['sha256', s.sha256],
        ],
      ),
    )
    .join('\n\n');
}

/** `causeway trust …`: the federation's root, intermediates and bundle, offline. */
export interface NatsOptions {
  natsUrl: string;
  natsUser?: string;
  natsPasswordFile?: string;
}

class NatsConnectError extends Error {
  readonly code = 'CAUSEWAY_CLI_NATS';
}

/** Connects (a first failure is not retried: a person is waiting) and says plainly why it could not. */
export async function natsConnect(options: NatsOptions, name: string): Promise<NatsConnection> {
  if ((options.natsUser === undefined) !== (options.natsPasswordFile === undefined))
    throw new NatsConnectError('give both --nats-user and --nats-password-file, or neither');
  const auth = options.natsUser
    ? { user: options.natsUser, pass: (await readFile(options.natsPasswordFile!, 'utf8')).trim() }
    : {};
  try {
    return await connect({ servers: options.natsUrl, name, ...auth });
  } catch (error) {
    throw new NatsConnectError(`cannot connect to NATS at ${options.natsUrl}: ${(error as Error).message}`);
  }
}

export function trustCommand(): Command {
  const trust = new Command('trust').description(
    'the federation trust root: create it, issue cluster intermediates and workload certificates, inspect, bundle',
  );
  const dirOption = () =>
    new Option(
      '--dir <dir>',
      'the trust directory (holds the root key: keep it offline)',
    ).makeOptionMandatory();

  trust
    .command('init')
    .description('create a trust directory with a new root CA and its signed trust bundle')
    .addOption(dirOption())
    .requiredOption('--trust-domain <name>', 'SPIFFE trust domain, e.g. mesh.example.com')
    .addOption(
      new Option('--key-type <type>', 'key type of the root').choices(KEY_TYPES).default('ecdsa-p256'),
    )
    .addOption(
      new Option('--ttl <duration>', 'root lifetime').argParser(duration).default(3650 * 86_400_000, '3650d'),
    )
    .option('--json', 'print JSON')
    .action(
      async (options: {
        dir: string;
        trustDomain: string;
        keyType: KeyType;
        ttl: number;
        json?: boolean;
      }) => {
        const directory = new TrustDirectory(options.dir);
        const { state, files } = await directory.init({
          trustDomain: options.trustDomain,
          keyType: options.keyType,
          rootTtlMs: options.ttl,
        });
        const root = state.roots[0]!;
        print(
          options.json,
          { trustDomain: state.trustDomain, root: { ...root, ...files }, bundle: directory.bundleFile },
          () =>
            formatTable(
              ['item', 'value'],
              [
                ['trust domain', state.trustDomain],
                ['root', `${root.name} (${options.keyType}, ${formatDuration(options.ttl)})`],
                ['certificate', files.certificate],
                ['private key', `${files.privateKey} (mode 0600)`],
                ['bundle', `${directory.bundleFile} (version ${state.bundleVersion})`],
                ['sha256', root.fingerprint],
              ],
            ),
        );
      },
    );

  trust
    .command('issue-intermediate')
    .description(
      "issue a cluster's intermediate CA (spiffe://<td>/cluster/<name>, path length 0) from the active root",
    )
    .addOption(dirOption())
    .requiredOption('--cluster <name>', 'cluster name (a DNS label)')
    .addOption(
      new Option('--ttl <duration>', 'lifetime').argParser(duration).default(365 * 86_400_000, '365d'),
    )
    .option('--json', 'print JSON')
    .action(async (options: { dir: string; cluster: string; ttl: number; json?: boolean }) => {
      const { certificate, files } = await new TrustDirectory(options.dir).issueIntermediate(
        options.cluster,
        options.ttl,
      );
      const summary = summarize(certificate);
      print(options.json, { cluster: options.cluster, ...files, certificateInfo: summary }, () =>
        formatTable(
          ['item', 'value'],
          [
            ['spiffe id', summary.spiffeIds.join(' ')],
            ['certificate', files.certificate],
            ['chain', files.chain ?? '-'],
            ['private key', `${files.privateKey} (mode 0600)`],
            ['valid until', `${summary.notAfter} (${summary.expiresIn})`],
          ],
        ),
      );
    });

  trust
    .command('issue-workload')
    .description(
      'issue a workload certificate spiffe://<td>/ns/<ns>/sa/<sa> from a cluster intermediate (manual use, tests)',
    )
    .addOption(dirOption())
    .requiredOption('--cluster <name>', 'cluster whose intermediate signs')
    .requiredOption('--namespace <ns>', 'Kubernetes namespace')
    .requiredOption('--service-account <sa>', 'Kubernetes service account')
    .addOption(new Option('--ttl <duration>', 'lifetime').argParser(duration).default(86_400_000, '24h'))
    .option('--json', 'print JSON')
    .action(
      async (options: {
        dir: string;
        cluster: string;
        namespace: string;
        serviceAccount: string;
        ttl: number;
        json?: boolean;
      }) => {
        const { certificate, files } = await new TrustDirectory(options.dir).issueWorkload({
          cluster: options.cluster,
          namespace: options.namespace,
          serviceAccount: options.serviceAccount,
          ttlMs: options.ttl,
        });
        const summary = summarize(certificate);
        print(options.json, { ...files, certificateInfo: summary }, () =>
          formatTable(
            ['item', 'value'],
            [
              ['spiffe id', summary.spiffeIds.join(' ')],
              ['certificate', `${files.certificate} (leaf + intermediate)`],
              ['private key', `${files.privateKey} (mode 0600)`],
              ['valid until', `${summary.notAfter} (${summary.expiresIn})`],
            ],
          ),
        );
      },
    );

  trust
    .command('inspect')
    .description(
      'show a PEM certificate chain: SPIFFE IDs, validity, fingerprints; with --dir, verify it against the bundle',
    )
    .argument('<file>', 'PEM file with one or more certificates, leaf first')
    .option('--dir <dir>', 'trust directory whose bundle to verify against')
    .option('--json', 'print JSON')
    .action(async (file: string, options: { dir?: string; json?: boolean }) => {
      const blocks = splitPemCertificates(await readFile(file, 'utf8'));
      if (blocks.length === 0)
        throw new PkiError('CAUSEWAY_PKI_BAD_INPUT', `${file} holds no PEM certificate`);
      const chain = blocks.map((block) => new X509Certificate(block));
      const summaries = chain.map(summarize);
      let verification:
        { ok: true; identity: VerifiedIdentity } | { ok: false; code: string; reason: string } | undefined;
      if (options.dir) {
        const directory = new TrustDirectory(options.dir);
        const state = await directory.state();
        const bundle = await directory.readBundle();
        try {
          const identity = verifySvid({
            chain,
            roots: bundle.bundle.roots.map((pem) => new X509Certificate(pem)),
            trustDomain: state.trustDomain,
          });
          verification = { ok: true, identity };
        } catch (error) {
          if (!(error instanceof PkiError)) throw error;
          verification = { ok: false, code: error.code, reason: error.message };
        }
      }
      print(options.json, { file, certificates: summaries, verification }, () => {
        const lines = [summaryTable(summaries)];
        if (verification?.ok) {
          lines.push(
            `\nverified: ${verification.identity.spiffeId.uri} from cluster ${verification.identity.cluster}, root ${verification.identity.rootFingerprint}`,
          );
        } else if (verification) {
          lines.push(`\nNOT verified (${verification.code}): ${verification.reason}`);
        }
        return lines.join('\n');
      });
      if (verification && !verification.ok) process.exitCode = 1;
    });

  trust
    .command('bundle')
    .description(
      'print the trust bundle: the roots as PEM (for openssl -CAfile), or the signed bundle with --json',
    )
    .addOption(dirOption())
    .option('--json', 'print the signed bundle as JSON')
    .action(async (options: { dir: string; json?: boolean }) => {
      const signed = await new TrustDirectory(options.dir).readBundle();
      process.stdout.write(options.json ? `${JSON.stringify(signed)}\n` : signed.bundle.roots.join(''));
    });

  trust
    .command('publish')
    .description(
      'put the signed trust bundle on NATS, where every controller picks it up (they verify it first)',
    )
    .addOption(dirOption())
    .requiredOption('--nats-url <url>', 'NATS server, e.g. nats://127.0.0.1:4222')
    .option('--nats-user <name>', 'NATS user (the operator user of `causeway nats-config`)')
    .option('--nats-password-file <file>', 'file holding the NATS password')
    .option('--json', 'print JSON')
    .action(async (options: NatsOptions & { dir: string; json?: boolean }) => {
      const signed = await new TrustDirectory(options.dir).readBundle();
      const connection = await natsConnect(options, 'causeway-trust');
      try {
        const revision = await (
          await NatsTrustStore.open(connection)
        )
          .putBundle(signed)
          .catch((error: unknown) => {
            throw new NatsConnectError(`NATS refused the bundle: ${(error as Error).message}`);
          });
        const result = {
          version: signed.bundle.version,
          hash: bundleHash(signed.bundle),
          roots: signed.bundle.roots.length,
          revision,
        };
        print(
          options.json,
          result,
          () =>
            `published trust bundle version ${result.version} (${result.roots} root(s), hash ${result.hash})`,
        );
      } finally {
        await connection.close();
      }
    });

  trust
    .command('rotate')
    .description(
      'rotate the root: add the new root, re-issue intermediates, wait for every workload, remove the old root; resumable',
    )
    .addOption(dirOption())
    .requiredOption('--nats-url <url>', 'NATS server, e.g. nats://127.0.0.1:4222')
    .option('--nats-user <name>', 'NATS user (the operator user of `causeway nats-config`)')
    .option('--nats-password-file <file>', 'file holding the NATS password')
    .addOption(
      new Option('--step-timeout <duration>', 'how long one step may wait')
        .argParser(duration)
        .default(600_000, '10m'),
    )
    .option('--json', 'print progress as JSON lines and the result as the last line')
    .action(async (options: NatsOptions & { dir: string; stepTimeout: number; json?: boolean }) => {
      const connection = await natsConnect(options, 'causeway-trust-rotate');
      try {
        const record = await rotateRoot({
          directory: new TrustDirectory(options.dir),
          store: await NatsTrustStore.open(connection),
          stepTimeoutMs: options.stepTimeout,
          onProgress: (line) =>
            process.stderr.write(
              options.json
                ? `${JSON.stringify({ time: new Date().toISOString(), progress: line })}\n`
                : `${line}\n`,
            ),
        }).catch((error: unknown) => {
          // Our own refusals carry a CAUSEWAY_ code; anything else here is NATS failing.
          if (String((error as { code?: unknown }).code).startsWith('CAUSEWAY_')) throw error;
          throw new NatsConnectError(
            `the rotation stopped on a NATS error (${(error as Error).message}); run the same command again to resume`,
          );
        });
        print(options.json, record, () => `rotated ${record.from} -> ${record.to}`);
      } finally {
        await connection.close();
      }
    });

  return trust;
}
