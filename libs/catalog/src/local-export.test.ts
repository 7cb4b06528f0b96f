import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deriveLocalExport } from './index.ts';

const serviceExport = {
  metadata: { name: 'cart', namespace: 'shop', creationTimestamp: '2026-11-01T10:00:00Z' },
};
const base = {
  cluster: 'east',
  serviceExport,
  slices: [],
  gatewayAddresses: ['127.0.0.1:15443'],
  identities: [],
  revision: 7,
};

test('no Service: Valid=False NoService, nothing to publish', () => {
  const result = deriveLocalExport({ ...base, service: undefined });
  assert.deepEqual(result.valid, {
    type: 'Valid',
    status: 'False',
    reason: 'NoService',
    message: 'Service shop/cart not found',
  });
  assert.equal(result.record, undefined);
});

test('an ExternalName Service: Valid=False InvalidServiceType', () => {
  const result = deriveLocalExport({
    ...base,
    service: { metadata: serviceExport.metadata, spec: { type: 'ExternalName' } },
  });
  assert.equal(result.valid.reason, 'InvalidServiceType');
  assert.equal(result.record, undefined);
});

test('a ClusterIP Service with slices: a record with its ports and ready endpoints', () => {
  const result = deriveLocalExport({
    ...base,
    service: {
      metadata: serviceExport.metadata,
      spec: {
        type: 'ClusterIP',
        clusterIP: '10.96.0.10',
        ports: [{ name: 'http', protocol: 'TCP', port: 80, appProtocol: 'http' }],
      },
    },
    slices: [
      {
        endpoints: [
          { addresses: ['10.0.0.1'], conditions: { ready: true } },
          { addresses: ['10.0.0.2'], conditions: { ready: false } },
        ],
      },
      { endpoints: [{ addresses: ['10.0.0.3'] }] },
    ],
  });
  assert.equal(result.valid.status, 'True');
  assert.deepEqual(result.record, {
    cluster: 'east',
    namespace: 'shop',
    name: 'cart',
    type: 'ClusterSetIP',
    sessionAffinity: 'None',
    ports: [{ name: 'http', protocol: 'TCP', port: 80, appProtocol: 'http' }],
    exportCreatedAt: '2026-11-01T10:00:00.000Z',
    revision: 7,
    gatewayAddresses: ['127.0.0.1:15443'],
    readyEndpoints: 2,
    identities: [],
  });
});

test('a headless Service exports as Headless', () => {
  const result = deriveLocalExport({
    ...base,
    service: { metadata: serviceExport.metadata, spec: { clusterIP: 'None', ports: [] } },
  });
  assert.equal(result.record?.type, 'Headless');
});
