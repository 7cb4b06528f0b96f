// The kind set-up (infra/kind) without Docker: each overlay rendered with the built kubectl
// (`kubectl kustomize`, as up.sh renders it) and accepted by a real kube-apiserver with the
// CRDs (server-side dry-run); every Causeway component's settings in it valid for its app
// with the environment its pod gives it; every ConfigMap, Secret and service account a pod
// needs either in the overlay or made by up.sh; the Prometheus files accepted by promtool;
// the scripts clean under shellcheck. Then the federation controller runs with the
// overlay's settings under its own service account and ClusterRole (a token of that
// account, nothing more) against the real API server and a NATS server set up as up.sh
// sets it up, and does its whole job: exports, imports, status, token reviews.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { CoreV1Api } from '@kubernetes/client-node';
import { parseAllDocuments, parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { expandEnvironment, parseConfig, type z } from '@causeway/config';
import type { TrustDirectory } from '@causeway/pki';
import {
  eventually,
  findOnPath,
  kubeBinaries,
  kubectl,
  kubectlBinary,
  kubectlGet,
  repoRoot,
  startKubeControlPlane,
  startNats,
  type KubeControlPlane,
  type NatsServer,
} from '@causeway/testing';
import { settingsSchema as controllerSchema } from '../../apps/federation-controller/src/settings.ts';
import { settingsSchema as eastWestSchema } from '../../apps/east-west-gateway/src/settings.ts';
import { settingsSchema as ingressSchema } from '../../apps/ingress-gateway/src/settings.ts';
import { settingsSchema as sidecarSchema } from '../../apps/sidecar/src/settings.ts';
import {
  initTrust,
  startComponentProcess,
  workloadCredentials,
  type ComponentProcess,
} from '../support/controller-process.ts';

const run = promisify(execFile);
const KIND = path.join(repoRoot, 'infra/kind');
const CLUSTERS = ['east', 'west'] as const;
type Cluster = (typeof CLUSTERS)[number];
const cli = path.join(repoRoot, 'apps/cli/bin/causeway.mjs');

/** What up.sh makes itself (credentials and the trust bundle, never in the repository): where, with which keys. */
const MADE_BY_UP: ReadonlyArray<{
  readonly kind: 'Secret' | 'ConfigMap';
  readonly name: string;
  readonly clusters: readonly Cluster[];
  readonly namespaces: readonly string[];
  readonly keys: readonly string[];
}> = [
  {
    kind: 'Secret',
    name: 'causeway-intermediate',
    clusters: ['east', 'west'],
    namespaces: ['causeway-system'],
    keys: ['ca.crt', 'ca.key', 'bundle.json'],
  },
  {
    kind: 'Secret',
    name: 'causeway-nats',
    clusters: ['east', 'west'],
    namespaces: ['causeway-system'],
    keys: ['password'],
  },
  {
    kind: 'Secret',
    name: 'nats-auth',
    clusters: ['east'],
    namespaces: ['causeway-system'],
    keys: ['auth.conf'],
  },
  {
    kind: 'ConfigMap',
    name: 'causeway-trust-bundle',
    clusters: ['east', 'west'],
    namespaces: ['causeway-system', 'shop'],
    keys: ['bundle.json'],
  },
];

const madeByUp = (cluster: Cluster, namespace: string, kind: string, name: string) =>
  MADE_BY_UP.find(
    (made) =>
      made.kind === kind &&
      made.name === name &&
      made.clusters.includes(cluster) &&
      made.namespaces.includes(namespace),
  );

/** The app each Causeway component container runs, and its settings schema. */
const SCHEMAS: Record<string, z.ZodType> = {
  'federation-controller': controllerSchema,
  'east-west-gateway': eastWestSchema,
  'ingress-gateway': ingressSchema,
  sidecar: sidecarSchema,
};

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  spec?: Record<string, unknown>;
}

interface Container {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  env?: Array<{
    name: string;
    value?: string;
    valueFrom?: {
      configMapKeyRef?: { name: string; key: string };
      secretKeyRef?: { name: string; key: string };
      fieldRef?: { fieldPath: string };
    };
  }>;
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}

interface Volume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string };
  projected?: {
    sources: Array<{
      configMap?: { name: string };
      secret?: { name: string };
      serviceAccountToken?: { path: string };
    }>;
  };
}

interface PodSpec {
  serviceAccountName?: string;
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
}

interface Rendered {
  readonly cluster: Cluster;
  readonly file: string;
  readonly objects: K8sObject[];
}

let dir: string;
const rendered = new Map<Cluster, Rendered>();
const planes = new Map<Cluster, KubeControlPlane>();
let nats: NatsServer | undefined;
let controller: ComponentProcess | undefined;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-kind-'));
  const binary = await kubectlBinary();
  for (const cluster of CLUSTERS) {
    const { stdout } = await run(
      binary,
      ['kustomize', '--load-restrictor=LoadRestrictionsNone', path.join(KIND, 'overlays', cluster)],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    const file = path.join(dir, `${cluster}.yaml`);
    await writeFile(file, stdout);
    const objects = parseAllDocuments(stdout)
      .map((document) => document.toJS() as K8sObject | null)
      .filter((object): object is K8sObject => object !== null);
    rendered.set(cluster, { cluster, file, objects });
  }
  // A real API server per cluster, with the CRDs.
  const started = await Promise.all(
    CLUSTERS.map((name, index) =>
      startKubeControlPlane({ name, serviceCidr: `10.${110 + index * 10}.0.0/16` }),
    ),
  );
  started.forEach((plane, index) => planes.set(CLUSTERS[index]!, plane));
});

after(async () => {
  await controller?.stop();
  await nats?.dispose();
  for (const plane of planes.values()) await plane.dispose();
  await rm(dir, { recursive: true, force: true });
});

const objectsOf = (cluster: Cluster): K8sObject[] => rendered.get(cluster)!.objects;

const find = (cluster: Cluster, kind: string, namespace: string | undefined, name: string) =>
  objectsOf(cluster).find(
    (o) =>
      o.kind === kind &&
      o.metadata.name === name &&
      (namespace === undefined || o.metadata.namespace === namespace),
  );

/** Every pod template of an overlay: Deployments, StatefulSets, Jobs. */
function podsOf(cluster: Cluster): Array<{ owner: string; namespace: string; spec: PodSpec }> {
  return objectsOf(cluster)
    .filter((o) => ['Deployment', 'StatefulSet', 'Job'].includes(o.kind))
    .map((o) => ({
      owner: `${o.kind} ${o.metadata.namespace}/${o.metadata.name}`,
      namespace: o.metadata.namespace!,
      spec: (o.spec as { template: { spec: PodSpec } }).template.spec,
    }));
}

/** The environment a container gets, with the values the downward API would give. */
function environmentOf(
  cluster: Cluster,
  namespace: string,
  pod: PodSpec,
  container: Container,
): Record<string, string> {
  const fields: Record<string, string> = {
    'metadata.namespace': namespace,
    'metadata.name': 'pod-0',
    'spec.serviceAccountName': pod.serviceAccountName ?? 'default',
    'status.podIP': '10.10.0.7',
    'status.hostIP': '172.18.0.3',
  };
  const env: Record<string, string> = {};
  for (const variable of container.env ?? []) {
    const from = variable.valueFrom;
    if (variable.value !== undefined) env[variable.name] = variable.value;
    else if (from?.fieldRef) {
      const value = fields[from.fieldRef.fieldPath];
      assert.ok(value, `${container.name}: no sample value for fieldRef ${from.fieldRef.fieldPath}`);
      env[variable.name] = value;
    } else if (from?.configMapKeyRef) {
      const map = find(cluster, 'ConfigMap', namespace, from.configMapKeyRef.name);
      const value = map?.data?.[from.configMapKeyRef.key];
      assert.ok(
        value !== undefined,
        `${cluster}: ${container.name} in ${namespace} reads ${from.configMapKeyRef.name}/${from.configMapKeyRef.key}, which the overlay does not have`,
      );
      env[variable.name] = value;
    }
  }
  return env;
}

/** `--config=FILE` or `--config FILE` among a container's arguments. */
function configArgument(args: readonly string[]): string | undefined {
  const index = args.findIndex((a) => a === '--config' || a.startsWith('--config='));
  if (index < 0) return undefined;
  return args[index]!.includes('=') ? args[index]!.slice('--config='.length) : args[index + 1];
}

/** The ConfigMaps and Secrets a volume takes its files from. */
function volumeSources(volume: Volume): Array<{ kind: 'ConfigMap' | 'Secret'; name: string }> {
  const sources: Array<{ kind: 'ConfigMap' | 'Secret'; name: string }> = [];
  if (volume.configMap) sources.push({ kind: 'ConfigMap', name: volume.configMap.name });
  if (volume.secret) sources.push({ kind: 'Secret', name: volume.secret.secretName });
  for (const source of volume.projected?.sources ?? []) {
    if (source.configMap) sources.push({ kind: 'ConfigMap', name: source.configMap.name });
    if (source.secret) sources.push({ kind: 'Secret', name: source.secret.name });
  }
  return sources;
}

/** The file names a volume holds (undefined: a volume that starts empty). */
function volumeKeys(cluster: Cluster, namespace: string, volume: Volume): Set<string> | undefined {
  if (!volume.configMap && !volume.secret && !volume.projected) return undefined;
  const keys = new Set<string>();
  const add = (kind: 'ConfigMap' | 'Secret', name: string) => {
    const made = madeByUp(cluster, namespace, kind, name);
    for (const key of made?.keys ?? Object.keys(find(cluster, kind, namespace, name)?.data ?? {}))
      keys.add(key);
  };
  for (const source of volumeSources(volume)) add(source.kind, source.name);
  for (const source of volume.projected?.sources ?? [])
    if (source.serviceAccountToken) keys.add(source.serviceAccountToken.path);
  return keys;
}

/** A component's settings file from the overlay: the ConfigMap mounted where --config points. */
function settingsOf(cluster: Cluster, namespace: string, pod: PodSpec, container: Container) {
  const file = configArgument(container.args ?? []);
  if (!file || !container.image.startsWith('causeway:')) return undefined;
  const app = (container.args ?? [])
    .map((arg) => /^apps\/([a-z-]+)\/dist\/main\.js$/.exec(arg)?.[1])
    .find((found) => found !== undefined);
  assert.ok(app, `${container.name}: --config given, but the app it runs is not apps/<app>/dist/main.js`);
  const mount = (container.volumeMounts ?? []).find((m) => m.mountPath === path.posix.dirname(file));
  assert.ok(mount, `${cluster}: ${container.name}'s settings ${file} are in no mounted volume`);
  const volume = (pod.volumes ?? []).find((v) => v.name === mount.name);
  const mapName = volume?.configMap?.name;
  assert.ok(mapName, `${cluster}: ${container.name}'s settings volume is not a ConfigMap`);
  const text = find(cluster, 'ConfigMap', namespace, mapName)?.data?.[path.posix.basename(file)];
  assert.ok(
    text !== undefined,
    `${cluster}: ConfigMap ${namespace}/${mapName} has no ${path.posix.basename(file)}`,
  );
  return { app, file, text, mounts: container.volumeMounts ?? [] };
}

test('every overlay renders, and a real API server with the CRDs accepts all of it (server-side dry-run)', async () => {
  for (const cluster of CLUSTERS) {
    const plane = planes.get(cluster)!;
    const { file, objects } = rendered.get(cluster)!;
    // Namespaced objects are checked against their namespace: the namespaces exist first
    // (up.sh applies them first too).
    await kubectl(plane, [
      'apply',
      '--server-side',
      '--field-manager=causeway-kind',
      '-f',
      path.join(KIND, 'base/namespaces.yaml'),
    ]);
    const output = await kubectl(plane, [
      'apply',
      '--server-side',
      '--dry-run=server',
      '--field-manager=causeway-kind',
      '-f',
      file,
    ]);
    const applied = output.split('\n').filter((line) => line.endsWith('serverside-applied (server dry run)'));
    assert.equal(applied.length, objects.length, `${cluster}: every object accepted:\n${output}`);
    for (const kind of ['Deployment', 'ClusterRole', 'ServiceExport', 'HTTPRoute', 'TrafficPolicy'])
      assert.ok(
        objects.some((o) => o.kind === kind),
        `${cluster}: the overlay has a ${kind}`,
      );
  }
  // The selector-less Services' EndpointSlices up.sh makes from the template.
  const template = await readFile(path.join(KIND, 'remote-endpoint.yaml.tmpl'), 'utf8');
  const slices: Array<[Cluster, string, string, string, number]> = [
    ['west', 'nats', 'client', '172.18.0.2', 30422],
    ['east', 'prometheus-west', 'http', '172.18.0.3', 30091],
  ];
  for (const [cluster, service, portName, address, port] of slices) {
    const target = find(cluster, 'Service', 'causeway-system', service);
    assert.ok(target, `${cluster} has the Service ${service}`);
    const ports = (target.spec as { ports: Array<{ name: string }>; selector?: unknown }).ports;
    assert.equal((target.spec as { selector?: unknown }).selector, undefined, `${service} has no selector`);
    assert.ok(
      ports.some((p) => p.name === portName),
      `${service} has the port ${portName}`,
    );
    const file = path.join(dir, `${cluster}-${service}-slice.yaml`);
    await writeFile(
      file,
      template
        .replaceAll('@SERVICE@', service)
        .replaceAll('@PORT_NAME@', portName)
        .replaceAll('@ADDRESS@', address)
        .replaceAll('@PORT@', String(port)),
    );
    const output = await kubectl(planes.get(cluster)!, [
      'apply',
      '--server-side',
      '--dry-run=server',
      '-f',
      file,
    ]);
    assert.match(output, /endpointslice.* serverside-applied \(server dry run\)/);
  }
});

test("every Causeway component's settings in the overlays are valid for its app, with the environment its pod gives it", () => {
  const seen = new Set<string>();
  for (const cluster of CLUSTERS) {
    for (const { owner, namespace, spec } of podsOf(cluster)) {
      for (const container of [...(spec.initContainers ?? []), ...spec.containers]) {
        const settings = settingsOf(cluster, namespace, spec, container);
        if (!settings) continue;
        const schema = SCHEMAS[settings.app];
        assert.ok(schema, `${owner}: no schema for ${settings.app}`);
        const env = environmentOf(cluster, namespace, spec, container);
        const source = `${cluster} ${owner} ${settings.file}`;
        const parsed = parseConfig(
          schema,
          expandEnvironment(parseYaml(settings.text), source, env),
          source,
        ) as Record<string, unknown>;
        assert.equal(parsed.cluster, cluster, `${source}: the cluster's own name`);
        // Every file the settings name is inside one of the container's mounts.
        const files = [
          parsed.stateDir,
          parsed.trustBundle,
          parsed.tokenFile,
          (parsed.nats as { passwordFile?: string } | undefined)?.passwordFile,
          ...Object.values((parsed.trust as Record<string, string> | undefined) ?? {}),
        ].filter((f): f is string => typeof f === 'string');
        for (const file of files) {
          const mount = settings.mounts.find(
            (m) => file === m.mountPath || file.startsWith(`${m.mountPath}/`),
          );
          assert.ok(mount, `${source}: ${file} is in none of the container's mounts`);
          // A file in a volume made from a ConfigMap, Secret or token is one of its keys.
          const keys = volumeKeys(
            cluster,
            namespace,
            (spec.volumes ?? []).find((v) => v.name === mount.name)!,
          );
          if (keys && file !== mount.mountPath)
            assert.ok(
              keys.has(path.posix.relative(mount.mountPath, file)),
              `${source}: ${file} is not in its volume (${[...keys].join(', ')})`,
            );
        }
        // Every in-cluster address a setting names is a port of a Service of the overlay.
        const addresses = JSON.stringify(parsed).matchAll(
          /[a-z]+:\/\/([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)/g,
        );
        for (const [address, name, serviceNamespace, port] of addresses) {
          const service = find(cluster, 'Service', serviceNamespace, name!);
          assert.ok(
            (service?.spec as { ports?: Array<{ port: number }> } | undefined)?.ports?.some(
              (p) => p.port === Number(port),
            ),
            `${source}: ${address} is no Service port in the overlay`,
          );
        }
        seen.add(settings.app);
      }
    }
  }
  assert.deepEqual(
    [...seen].sort(),
    Object.keys(SCHEMAS).sort(),
    'every component is deployed with settings',
  );
});

test('every ConfigMap, Secret and service account a pod uses is in the overlay or made by up.sh, and every port it is reached on is its own', async () => {
  // up.sh makes each of MADE_BY_UP with the keys listed.
  const commands = (await readFile(path.join(KIND, 'up.sh'), 'utf8')).replaceAll('\\\n', ' ').split('\n');
  for (const made of MADE_BY_UP) {
    const command = commands.find(
      (line) =>
        line
          .trim()
          .startsWith(
            `put "$cluster" ${made.kind === 'Secret' ? 'secret generic' : 'configmap'} ${made.name} `,
          ) ||
        line
          .trim()
          .startsWith(`put east ${made.kind === 'Secret' ? 'secret generic' : 'configmap'} ${made.name} `),
    );
    assert.ok(command, `up.sh makes the ${made.kind} ${made.name}`);
    for (const key of made.keys)
      assert.ok(command.includes(`--from-file=${key}=`), `up.sh puts ${key} in ${made.name}`);
  }
  for (const cluster of CLUSTERS) {
    for (const { owner, namespace, spec } of podsOf(cluster)) {
      const needed: Array<{ kind: string; name: string }> = (spec.volumes ?? []).flatMap(volumeSources);
      const containers = [...(spec.initContainers ?? []), ...spec.containers];
      for (const container of containers)
        for (const variable of container.env ?? []) {
          if (variable.valueFrom?.configMapKeyRef)
            needed.push({ kind: 'ConfigMap', name: variable.valueFrom.configMapKeyRef.name });
          if (variable.valueFrom?.secretKeyRef)
            needed.push({ kind: 'Secret', name: variable.valueFrom.secretKeyRef.name });
        }
      for (const { kind, name } of needed)
        assert.ok(
          madeByUp(cluster, namespace, kind, name) || find(cluster, kind, namespace, name),
          `${cluster}: ${owner} needs the ${kind} ${namespace}/${name}, which neither the overlay nor up.sh makes`,
        );
      if (spec.serviceAccountName)
        assert.ok(
          find(cluster, 'ServiceAccount', namespace, spec.serviceAccountName),
          `${cluster}: ${owner} runs as ${spec.serviceAccountName}, which the overlay does not make`,
        );
    }
    // Prometheus scrapes a pod where it says: some container's --admin-address port.
    for (const object of objectsOf(cluster).filter((o) => o.kind === 'Deployment')) {
      const template = (
        object.spec as { template: { metadata: { annotations?: Record<string, string> }; spec: PodSpec } }
      ).template;
      const port = template.metadata.annotations?.['causeway.dev/metrics-port'];
      if (!port) continue;
      const args = [...(template.spec.initContainers ?? []), ...template.spec.containers].flatMap(
        (c) => c.args ?? [],
      );
      assert.ok(
        args.includes(`--admin-address=0.0.0.0:${port}`),
        `${cluster}: ${object.metadata.name} serves no admin port on ${port}`,
      );
    }
    // The sample Services lead to the sidecars' inbound listeners.
    const sidecar = parseYaml(
      find(cluster, 'ConfigMap', 'shop', 'causeway-sidecar')!.data!['sidecar.yaml']!,
    ) as {
      inbound: Array<{ port: number }>;
    };
    for (const service of objectsOf(cluster).filter(
      (o) => o.kind === 'Service' && o.metadata.namespace === 'shop',
    ))
      for (const port of (service.spec as { ports: Array<{ targetPort: number }> }).ports)
        assert.ok(
          sidecar.inbound.some((inbound) => inbound.port === port.targetPort),
          `${cluster}: Service shop/${service.metadata.name} leads to ${port.targetPort}, no sidecar inbound port`,
        );
  }
});

test('the Prometheus configurations pass promtool, and the scripts pass shellcheck', async () => {
  // Prometheus 3's own promtool (built with the Kubernetes binaries): Debian's Prometheus
  // 2.42 is built without Kubernetes service discovery.
  const { promtool } = await kubeBinaries();
  for (const file of ['cluster.yml', 'cluster-kubernetes.yml', 'global.yml']) {
    const { stdout } = await run(promtool, [
      'check',
      'config',
      path.join(repoRoot, 'infra/prometheus', file),
    ]);
    assert.match(stdout, /SUCCESS: .* is valid prometheus config file syntax/, file);
  }
  const shellcheck = findOnPath('shellcheck');
  assert.ok(shellcheck, 'shellcheck (Debian package shellcheck) is on PATH');
  const scripts = [
    path.join(KIND, 'up.sh'),
    path.join(KIND, 'down.sh'),
    path.join(repoRoot, 'scripts/build-kube-bins.sh'),
    path.join(repoRoot, '.ci/run'),
  ];
  // Exit status 0 and nothing said: clean.
  const { stdout } = await run(shellcheck, scripts);
  assert.equal(stdout, '');
});

test("the federation controller, with the overlay's settings under its own service account and ClusterRole, exports, imports, writes status and reviews tokens", async () => {
  const plane = planes.get('east')!;
  const objects = objectsOf('east');
  // 1. What up.sh applies, for real this time: the controller's RBAC and the sample objects.
  const real = objects.filter(
    (o) =>
      (['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind) &&
        /federation-controller|hello/.test(o.metadata.name)) ||
      (o.metadata.namespace === 'shop' &&
        ['Service', 'ServiceExport', 'HTTPRoute', 'TrafficPolicy'].includes(o.kind)) ||
      ['Namespace', 'Gateway', 'GatewayClass'].includes(o.kind),
  );
  const realFile = path.join(dir, 'east-real.yaml');
  await writeFile(realFile, real.map((o) => `---\n${JSON.stringify(o)}\n`).join(''));
  await kubectl(plane, ['apply', '--server-side', '--field-manager=causeway-kind', '-f', realFile]);

  // 2. A token of the controller's service account, and one of a workload's (audience causeway).
  const core = plane.kubeConfig().makeApiClient(CoreV1Api);
  const tokenOf = async (namespace: string, name: string, audiences?: string[]) =>
    (
      await core.createNamespacedServiceAccountToken({
        name,
        namespace,
        body: { spec: { ...(audiences ? { audiences } : {}), expirationSeconds: 3600 } },
      })
    ).status!.token!;
  const controllerToken = await tokenOf('causeway-system', 'federation-controller');
  const workloadToken = await tokenOf('shop', 'hello', ['causeway']);
  const kubeconfig = path.join(dir, 'controller.kubeconfig');
  await writeFile(
    kubeconfig,
    stringifyYaml({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'east',
          cluster: {
            server: plane.server,
            'certificate-authority-data': Buffer.from(plane.caCertPem).toString('base64'),
          },
        },
      ],
      users: [{ name: 'federation-controller', user: { token: controllerToken } }],
      contexts: [{ name: 'east', context: { cluster: 'east', user: 'federation-controller' } }],
      'current-context': 'east',
    }),
  );

  // 3. NATS as up.sh sets it up: per-cluster users, buckets made by the operator, bundle published.
  const natsDir = path.join(dir, 'nats');
  await mkdir(natsDir);
  await run(process.execPath, [
    cli,
    'nats-config',
    '--cluster',
    'east',
    '--cluster',
    'west',
    '--out',
    natsDir,
  ]);
  nats = await startNats({ extraConfig: await readFile(path.join(natsDir, 'auth.conf'), 'utf8') });
  const operator = [
    '--nats-url',
    nats.url,
    '--nats-user',
    'operator',
    '--nats-password-file',
    path.join(natsDir, 'operator.password'),
  ];
  await run(process.execPath, [cli, 'nats-init', ...operator]);
  const trustDir = path.join(dir, 'trust');
  const trust: TrustDirectory = await initTrust(trustDir, 'mesh.local', ['east']);
  await run(process.execPath, [cli, 'trust', 'publish', '--dir', trustDir, ...operator]);

  // 4. The pod's files where its settings say, under a folder standing for the pod's root.
  const pod = path.join(dir, 'pod');
  const files = trust.clusterFiles('east');
  const place = async (to: string, from: string) => {
    await mkdir(path.dirname(path.join(pod, to)), { recursive: true });
    await copyFile(from, path.join(pod, to));
  };
  await place('/etc/causeway/trust/ca.crt', files.certificate);
  await place('/etc/causeway/trust/ca.key', files.privateKey);
  await place('/etc/causeway/trust/bundle.json', trust.bundleFile);
  await place('/etc/causeway/nats/password', path.join(natsDir, 'east.password'));
  const { spec } = podsOf('east').find(
    (p) => p.owner === 'Deployment causeway-system/federation-controller',
  )!;
  const container = spec.containers[0]!;
  const settings = settingsOf('east', 'causeway-system', spec, container)!;
  // Absolute paths move under the pod's folder; in-cluster becomes the service account's
  // kubeconfig; the fixed listen port becomes a free one.
  const relocate = (value: unknown): unknown =>
    typeof value === 'string'
      ? value === 'in-cluster'
        ? kubeconfig
        : value === '0.0.0.0:15012'
          ? '127.0.0.1:0'
          : value.startsWith('/')
            ? path.join(pod, value)
            : value
      : Array.isArray(value)
        ? value.map(relocate)
        : value && typeof value === 'object'
          ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, relocate(v)]))
          : value;
  // (Written as rendered: its ${NAME} references are for the controller to expand.)
  const settingsFile = path.join(dir, 'federation-controller.yaml');
  await writeFile(settingsFile, stringifyYaml(relocate(parseYaml(settings.text))));
  const env = {
    ...environmentOf('east', 'causeway-system', spec, container),
    CAUSEWAY_NATS_URL: nats.url,
    CAUSEWAY_NODE_IP: '127.0.0.1',
  };
  controller = await startComponentProcess('federation-controller', settingsFile, { env });
  const signing = String((await controller.waitForLog('signing and discovery service listening')).signing);

  // 5. Its whole job, each step needing its rights: the export read and its status written,
  // the import created with its status, route and policy status written, a token reviewed.
  type Conditions = { status?: { conditions?: Array<{ type: string; status: string }> } };
  await eventually(async () => {
    const exported = await kubectlGet<Conditions>(plane, ['serviceexport', 'hello', '-n', 'shop']);
    const ready = exported.status?.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready?.status, 'True', JSON.stringify(exported.status));
  }, 30_000);
  await eventually(async () => {
    const imported = await kubectlGet<Conditions & { spec?: { ports?: unknown[] } }>(plane, [
      'serviceimport',
      'hello',
      '-n',
      'shop',
    ]);
    assert.equal(imported.spec?.ports?.length, 2);
    assert.ok(
      imported.status?.conditions?.some((c) => c.type === 'Ready'),
      JSON.stringify(imported.status),
    );
  }, 30_000);
  await eventually(async () => {
    const route = await kubectlGet<{ status?: { parents?: Array<{ controllerName: string }> } }>(plane, [
      'httproute',
      'storefront',
      '-n',
      'shop',
    ]);
    assert.ok(route.status?.parents?.some((p) => p.controllerName === 'causeway.dev/federation-controller'));
    const policy = await kubectlGet<{ status?: { ancestors?: unknown[] } }>(plane, [
      'trafficpolicy',
      'catalog-chaos',
      '-n',
      'shop',
    ]);
    assert.ok((policy.status?.ancestors?.length ?? 0) > 0, JSON.stringify(policy.status));
  }, 30_000);
  const credentials = await workloadCredentials({
    signingUrl: signing,
    rootPem: (JSON.parse(await readFile(trust.bundleFile, 'utf8')) as { bundle: { roots: string[] } }).bundle
      .roots[0]!,
    trustDomain: 'mesh.local',
    cluster: 'east',
    namespace: 'shop',
    serviceAccount: 'hello',
    token: workloadToken,
  });
  assert.equal(credentials.spiffeId, 'spiffe://mesh.local/ns/shop/sa/hello');
  // And nothing it asked the API server for was forbidden.
  const forbidden = controller.logs.filter((entry) => /forbidden|\b403\b/i.test(JSON.stringify(entry)));
  assert.deepEqual(forbidden, [], 'no request of the controller was refused');
});
