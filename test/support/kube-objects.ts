import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';

/** Creates a `ServiceExport` (multicluster.x-k8s.io/v1alpha1) for a Service. */
export async function createServiceExport(kube: KubeConfig, namespace: string, name: string): Promise<void> {
  await kube.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
    group: 'multicluster.x-k8s.io',
    version: 'v1alpha1',
    plural: 'serviceexports',
    namespace,
    body: { apiVersion: 'multicluster.x-k8s.io/v1alpha1', kind: 'ServiceExport', metadata: { name } },
  });
}
