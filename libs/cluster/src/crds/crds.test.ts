import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { renderCrdFiles } from './index.ts';

const crdDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../infra/crds');

test('infra/crds matches the definitions (run `npm run crds` after changing them)', async () => {
  for (const [file, text] of Object.entries(renderCrdFiles())) {
    assert.equal(await readFile(path.join(crdDir, file), 'utf8'), text, `infra/crds/${file} is stale`);
  }
});

test('the CRDs carry the upstream groups, versions, kinds and scopes', () => {
  const kinds = Object.values(renderCrdFiles())
    .flatMap((text) => parseAllDocuments(text).map((doc) => doc.toJS()))
    .filter(Boolean)
    .map((crd) => {
      const version = crd.spec.versions[0];
      return `${crd.spec.group}/${version.name} ${crd.spec.names.kind} ${crd.spec.scope}${version.subresources?.status ? ' +status' : ''}`;
    });
  assert.deepEqual(kinds.sort(), [
    'gateway.networking.k8s.io/v1 GRPCRoute Namespaced +status',
    'gateway.networking.k8s.io/v1 Gateway Namespaced +status',
    'gateway.networking.k8s.io/v1 GatewayClass Cluster +status',
    'gateway.networking.k8s.io/v1 HTTPRoute Namespaced +status',
    'gateway.networking.k8s.io/v1beta1 ReferenceGrant Namespaced',
    'multicluster.x-k8s.io/v1alpha1 ServiceExport Namespaced +status',
    'multicluster.x-k8s.io/v1alpha1 ServiceImport Namespaced +status',
    'policy.causeway.dev/v1alpha1 AuthorizationPolicy Namespaced +status',
    'policy.causeway.dev/v1alpha1 RateLimitPolicy Namespaced +status',
    'policy.causeway.dev/v1alpha1 TrafficPolicy Namespaced +status',
  ]);
});
