import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { REQUEST_METRICS, RequestMetrics, type RequestRecord } from './telemetry.ts';

function record(overrides: Partial<RequestRecord>): RequestRecord {
  return {
    reporter: 'source',
    sourceCluster: 'west',
    sourceWorkload: 'web',
    destinationCluster: 'east',
    destinationService: 'ledger.shop.svc.clusterset.local',
    responseCode: 200,
    grpcStatus: '',
    seconds: 0.003,
    ...overrides,
  };
}

test('the request metrics read exactly as prom-client counting the same requests', async () => {
  const ours = new Registry();
  const metrics = new RequestMetrics(ours);
  const theirs = new Registry();
  // prom-client's own metrics with the same names, labels and buckets: the reference.
  const total = new Counter({
    ...REQUEST_METRICS.total,
    labelNames: [...REQUEST_METRICS.total.labelNames],
    registers: [theirs],
  });
  const duration = new Histogram({
    ...REQUEST_METRICS.duration,
    labelNames: [...REQUEST_METRICS.duration.labelNames],
    buckets: [...REQUEST_METRICS.duration.buckets],
    registers: [theirs],
  });
  const requests = [
    record({}),
    record({ seconds: 0.0005 }),
    record({ seconds: 12 }),
    record({ responseCode: 503, seconds: 0.2 }),
    record({ reporter: 'destination', sourceWorkload: 'spiffe://mesh.local/x', seconds: 0.01 }),
    record({ grpcStatus: '14', responseCode: 200, seconds: 1 }),
    record({ destinationService: 'a"quote\\slash', seconds: 0 }),
  ];
  for (const request of [...requests, ...requests.slice(0, 3)]) {
    metrics.record(request);
    total.inc({
      reporter: request.reporter,
      source_cluster: request.sourceCluster,
      source_workload: request.sourceWorkload,
      destination_cluster: request.destinationCluster,
      destination_service: request.destinationService,
      response_code: String(request.responseCode),
      grpc_status: request.grpcStatus,
    });
    duration.observe(
      {
        reporter: request.reporter,
        destination_cluster: request.destinationCluster,
        destination_service: request.destinationService,
        response_code: String(request.responseCode),
      },
      request.seconds,
    );
  }
  const lines = (text: string) => text.split('\n').sort();
  assert.deepEqual(lines(await ours.metrics()), lines(await theirs.metrics()));
  // JSON (prom-client's other reading) too.
  assert.equal((await ours.getMetricsAsJSON()).length, 2);
});

test('a reset registry starts the request metrics from zero', async () => {
  const registry = new Registry();
  const metrics = new RequestMetrics(registry);
  metrics.record(record({}));
  registry.resetMetrics();
  assert.doesNotMatch(await registry.metrics(), /causeway_requests_total\{/);
  metrics.record(record({}));
  assert.match(await registry.metrics(), /causeway_requests_total\{.*\} 1$/m);
});
