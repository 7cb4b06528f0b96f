import { createPrivateKey, X509Certificate } from 'node:crypto';
import { access, chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { signTrustBundle, type SignedTrustBundle, type TrustBundle } from './bundle.ts';
import {
  BACKDATE_MS,
  createRootCa,
  issueIntermediateCa,
  issueWorkloadCertificate,
  loadCertificateAuthority,
  type CertificateAuthority,
} from './ca.ts';
import { PkiError } from './errors.ts';
import { generateKeyPair, privateKeyToPem, type KeyType } from './keys.ts';
import { checkTrustDomain } from './spiffe.ts';

/** trust.json: what the directory holds. Private keys live beside it, mode 0600. */
export interface TrustState {
  readonly trustDomain: string;
  readonly keyType: KeyType;
  /** Roots in the order they were created; `active` signs new intermediates. */
  readonly roots: ReadonlyArray<{ name: string; fingerprint: string; active: boolean; retired?: boolean }>;
  readonly bundleVersion: number;
}

/** Files written by an operation, for the CLI to list (never a key's content). */
export interface WrittenFiles {
  readonly certificate: string;
  readonly privateKey: string;
  readonly chain?: string;
}

const exists = async (file: string): Promise<boolean> =>
  access(file).then(
    () => true,
    () => false,
  );

async function writePrivate(file: string, pem: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, pem, { mode: 0o600 });
  // `mode` applies only when the file is created: make sure of it for an existing file too.
  await chmod(path.dirname(file), 0o700);
  await chmod(file, 0o600);
}

/** Cluster, namespace and service-account names become path segments: DNS labels only. */
function segment(what: string, value: string): string {
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(value)) {
    throw new PkiError(
      'CAUSEWAY_PKI_BAD_INPUT',
      `${what} '${value}' is not a DNS label (a-z, 0-9, '-', at most 63)`,
    );
  }
  return value;
}

async function writePublic(file: string, text: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text, { mode: 0o644 });
}

/**
 * A folder holding a federation's offline root CA(s), the cluster intermediates issued
 * from it and the signed trust bundle: what `causeway trust` manages.
 */
export class TrustDirectory {
  constructor(readonly dir: string) {}

  private file(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }

  rootFiles(name: string): { certificate: string; privateKey: string } {
    segment('root', name);
    return {
      certificate: this.file('roots', name, 'ca.crt'),
      privateKey: this.file('roots', name, 'ca.key'),
    };
  }

  clusterFiles(cluster: string): { certificate: string; privateKey: string; chain: string } {
    segment('cluster', cluster);
    return {
      certificate: this.file('clusters', cluster, 'ca.crt'),
      privateKey: this.file('clusters', cluster, 'ca.key'),
      chain: this.file('clusters', cluster, 'chain.pem'),
    };
  }

  workloadFiles(
    cluster: string,
    namespace: string,
    serviceAccount: string,
  ): { certificate: string; privateKey: string } {
    const dir = this.file(
      'clusters',
      segment('cluster', cluster),
      'workloads',
      segment('namespace', namespace),
      segment('service account', serviceAccount),
    );
    return { certificate: path.join(dir, 'cert.pem'), privateKey: path.join(dir, 'key.pem') };
  }

  get bundleFile(): string {
    return this.file('bundle.json');
  }

  async state(): Promise<TrustState> {
    const file = this.file('trust.json');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new PkiError(
        'CAUSEWAY_PKI_BAD_INPUT',
        `${this.dir} is not a trust directory (no trust.json); run 'causeway trust init' first`,
        {
          cause: error,
        },
      );
    }
    return JSON.parse(text) as TrustState;
  }

  private async saveState(state: TrustState): Promise<void> {
    await writePublic(this.file('trust.json'), `${JSON.stringify(state, null, 2)}\n`);
  }

  async loadRoot(name: string): Promise<CertificateAuthority> {
    const files = this.rootFiles(name);
    return loadCertificateAuthority(
      await readFile(files.certificate, 'utf8'),
      createPrivateKey(await readFile(files.privateKey, 'utf8')),
    );
  }

  async activeRoot(): Promise<CertificateAuthority> {
    const state = await this.state();
    const active = state.roots.find((root) => root.active);
    if (!active) throw new PkiError('CAUSEWAY_PKI_BAD_INPUT', `${this.dir}: no active root in trust.json`);
    return await this.loadRoot(active.name);
  }

  async loadIntermediate(cluster: string): Promise<CertificateAuthority> {
    const files = this.clusterFiles(cluster);
    if (!(await exists(files.certificate))) {
      throw new PkiError(
        'CAUSEWAY_PKI_BAD_INPUT',
        `cluster '${cluster}' has no intermediate in ${this.dir}; run 'causeway trust issue-intermediate --cluster ${cluster}' first`,
      );
    }
    return loadCertificateAuthority(
      await readFile(files.certificate, 'utf8'),
      createPrivateKey(await readFile(files.privateKey, 'utf8')),
    );
  }

  /** Creates the directory with its first root and a bundle of that root. Refuses to overwrite. */
  async init(options: {
    trustDomain: string;
    keyType: KeyType;
    rootTtlMs?: number;
  }): Promise<{ state: TrustState; files: WrittenFiles }> {
    checkTrustDomain(options.trustDomain);
    if (await exists(this.file('trust.json'))) {
      throw new PkiError(
        'CAUSEWAY_PKI_BAD_INPUT',
        `${this.dir} already holds a trust root (trust.json); refusing to overwrite it`,
      );
    }
    const root = await createRootCa({
      trustDomain: options.trustDomain,
      name: 'root-1',
      keyType: options.keyType,
      ttlMs: options.rootTtlMs,
    });
    const files = this.rootFiles('root-1');
    await writePrivate(files.privateKey, privateKeyToPem(root.privateKey));
    await writePublic(files.certificate, root.certificatePem);
    const state: TrustState = {
      trustDomain: options.trustDomain,
      keyType: options.keyType,
      roots: [{ name: 'root-1', fingerprint: root.certificate.fingerprint256, active: true }],
      bundleVersion: 0,
    };
    await this.saveState(state);
    await this.publishBundle(root);
    return { state: await this.state(), files };
  }

  /** The current bundle: every root in trust.json, signed by `signer` (default the active root). */
  async publishBundle(signer?: CertificateAuthority): Promise<SignedTrustBundle> {
    const state = await this.state();
    const roots = await Promise.all(
      state.roots
        .filter((root) => !root.retired)
        .map(async (root) => readFile(this.rootFiles(root.name).certificate, 'utf8')),
    );
    const bundle: TrustBundle = {
      trustDomain: state.trustDomain,
      version: state.bundleVersion + 1,
      issuedAt: new Date().toISOString(),
      roots,
    };
    const signed = signTrustBundle(bundle, signer ?? (await this.activeRoot()));
    await writePublic(this.bundleFile, `${JSON.stringify(signed, null, 2)}\n`);
    await this.saveState({ ...state, bundleVersion: bundle.version });
    return signed;
  }

  async readBundle(): Promise<SignedTrustBundle> {
    return JSON.parse(await readFile(this.bundleFile, 'utf8')) as SignedTrustBundle;
  }

  /** Adds a new root (not yet active, not yet in the bundle until the next publish). */
  async addRoot(options: { ttlMs?: number } = {}): Promise<{ name: string; root: CertificateAuthority }> {
    const state = await this.state();
    const name = `root-${state.roots.length + 1}`;
    const root = await createRootCa({
      trustDomain: state.trustDomain,
      name,
      keyType: state.keyType,
      ttlMs: options.ttlMs,
    });
    const files = this.rootFiles(name);
    await writePrivate(files.privateKey, privateKeyToPem(root.privateKey));
    await writePublic(files.certificate, root.certificatePem);
    await this.saveState({
      ...state,
      roots: [...state.roots, { name, fingerprint: root.certificate.fingerprint256, active: false }],
    });
    return { name, root };
  }

  /** Makes `name` the root that signs new intermediates. */
  async activateRoot(name: string): Promise<void> {
    const state = await this.state();
    await this.saveState({
      ...state,
      roots: state.roots.map((root) => ({ ...root, active: root.name === name })),
    });
  }

  /** Takes a root out of future bundles (its files stay, for the record). */
  async retireRoot(name: string): Promise<void> {
    const state = await this.state();
    await this.saveState({
      ...state,
      roots: state.roots.map((root) =>
        root.name === name ? { ...root, active: false, retired: true } : root,
      ),
    });
  }

  /** Clusters that have an intermediate in this directory. */
  async clusters(): Promise<string[]> {
    try {
      return (await readdir(this.file('clusters'), { withFileTypes: true }))
        .filter((e) => e.isDirectory())
        .map((e) => e.name)
        .sort();
    } catch {
      return [];
    }
  }

  /**
   * Re-issues `cluster`'s intermediate for its existing key from the active root, so the
   * controller can switch without a new private key ever leaving this directory.
   */
  async reissueIntermediate(cluster: string, ttlMs?: number): Promise<string> {
    const state = await this.state();
    const root = await this.activeRoot();
    const current = await this.loadIntermediate(cluster);
    // Controllers take only a newer intermediate (by notBefore, in whole seconds).
    const notBeforeFloor = new Date(current.certificate.validFrom).getTime() + BACKDATE_MS + 1_000;
    const pem = issueIntermediateCa(root, {
      trustDomain: state.trustDomain,
      cluster,
      publicKey: current.certificate.publicKey,
      ttlMs,
      now: new Date(Math.max(Date.now(), notBeforeFloor)),
    });
    const files = this.clusterFiles(cluster);
    await writePublic(files.certificate, pem);
    await writePublic(files.chain, pem + root.certificatePem);
    return pem;
  }

  /** A new intermediate CA for `cluster`, signed by the active root (a new key each time). */
  async issueIntermediate(
    cluster: string,
    ttlMs?: number,
  ): Promise<{ certificate: X509Certificate; files: WrittenFiles }> {
    const state = await this.state();
    const root = await this.activeRoot();
    const keys = await generateKeyPair(state.keyType);
    const pem = issueIntermediateCa(root, {
      trustDomain: state.trustDomain,
      cluster,
      publicKey: keys.publicKey,
      ttlMs,
    });
    const files = this.clusterFiles(cluster);
    await writePrivate(files.privateKey, privateKeyToPem(keys.privateKey));
    await writePublic(files.certificate, pem);
    await writePublic(files.chain, pem + root.certificatePem);
    return { certificate: new X509Certificate(pem), files };
  }

  /** A workload SVID for `ns/sa` from `cluster`'s intermediate, for manual use and tests. */
  async issueWorkload(options: {
    cluster: string;
    namespace: string;
    serviceAccount: string;
    ttlMs?: number;
  }): Promise<{ certificate: X509Certificate; files: WrittenFiles }> {
    const state = await this.state();
    const intermediate = await this.loadIntermediate(options.cluster);
    const keys = await generateKeyPair(state.keyType);
    const pem = issueWorkloadCertificate(intermediate, {
      trustDomain: state.trustDomain,
      namespace: options.namespace,
      serviceAccount: options.serviceAccount,
      publicKey: keys.publicKey,
      ttlMs: options.ttlMs,
    });
    const files = this.workloadFiles(options.cluster, options.namespace, options.serviceAccount);
    await writePrivate(files.privateKey, privateKeyToPem(keys.privateKey));
    await writePublic(files.certificate, pem + intermediate.certificatePem);
    return { certificate: new X509Certificate(pem), files };
  }
}
