import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiextensionsV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  loadAllYaml,
  PatchStrategy,
  type KubeConfig,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { repoRoot } from './binaries.ts';
import { TestbedError } from './errors.ts';

/** The folder of the project's CRDs (also applied by hand with `kubectl apply -f`). */
export const crdDir = path.join(repoRoot, 'infra/crds');

/** Every CustomResourceDefinition shipped in infra/crds, parsed. */
export async function loadCrds(dir = crdDir): Promise<V1CustomResourceDefinition[]> {
  const files = (await readdir(dir)).filter((file) => file.endsWith('.yaml')).sort();
  const crds: V1CustomResourceDefinition[] = [];
  for (const file of files) {
    let documents: Array<{ kind?: string }>;
    try {
      // client-node's loader returns its model classes; its serializer maps model names
      // back to JSON (`_enum` -> `enum`, `xKubernetesListType` -> `x-kubernetes-list-type`)
      // and would silently drop those fields from a plain parsed object.
      documents = loadAllYaml(await readFile(path.join(dir, file), 'utf8')) as Array<{ kind?: string }>;
    } catch (error) {
      throw new TestbedError('CAUSEWAY_TESTBED_BAD_OPTION', `${file}: not valid YAML`, { cause: error });
    }
    for (const document of documents) {
      if (document?.kind === 'CustomResourceDefinition') crds.push(document as V1CustomResourceDefinition);
    }
  }
  return crds;
}

/**
 * Applies the CRDs server-side, then waits until each is Established and its resource
 * answers a list, so that a test may create objects right away.
 */
export async function installCrds(kubeConfig: KubeConfig, timeoutMs = 30_000): Promise<string[]> {
  const crds = await loadCrds();
  const objects = KubernetesObjectApi.makeApiClient(kubeConfig);
  for (const crd of crds) {
    await objects.patch(crd, undefined, undefined, 'causeway-testbed', true, PatchStrategy.ServerSideApply);
  }
  const extensions = kubeConfig.makeApiClient(ApiextensionsV1Api);
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const deadline = Date.now() + timeoutMs;
  for (const crd of crds) {
    const name = crd.metadata!.name!;
    const version = crd.spec.versions.find((v) => v.storage)!.name;
    for (;;) {
      const current = await extensions.readCustomResourceDefinition({ name });
      const established = current.status?.conditions?.some(
        (c) => c.type === 'Established' && c.status === 'True',
      );
      if (established) {
        try {
          await custom.listClusterCustomObject({
            group: crd.spec.group,
            version,
            plural: crd.spec.names.plural,
          });
          break;
        } catch {
          // not served yet
        }
      }
      if (Date.now() > deadline) {
        throw new TestbedError(
          'CAUSEWAY_TESTBED_NOT_READY',
          `CRD ${name} was not established in ${timeoutMs} ms`,
        );
      }
      await sleep(100);
    }
  }
  return crds.map((crd) => crd.metadata!.name!);
}
