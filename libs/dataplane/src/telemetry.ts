import { Counter, Histogram, type Registry } from 'prom-client';

/** One finished request, as either side reports it. */
export interface RequestRecord {
  readonly reporter: 'source' | 'destination';
  readonly sourceCluster: string;
  readonly sourceWorkload: string;
  readonly destinationCluster: string;
  readonly destinationService: string;
  readonly responseCode: number;
  readonly grpcStatus: string;
  readonly seconds: number;
}

/**
 * Request metrics with Istio's label vocabulary (DESIGN §7), from both sides of a call:
 * `causeway_requests_total` and `causeway_request_duration_seconds`.
 */
export class RequestMetrics {
  private readonly total: Counter;
  private readonly duration: Histogram;

  constructor(registry: Registry | undefined) {
    const registers = registry ? [registry] : [];
    const labelNames = [
      'reporter',
      'source_cluster',
      'source_workload',
      'destination_cluster',
      'destination_service',
      'response_code',
      'grpc_status',
    ];
    this.total = new Counter({
      name: 'causeway_requests_total',
      help: 'Requests through the sidecar, from the source side and from the destination side.',
      labelNames,
      registers,
    });
    this.duration = new Histogram({
      name: 'causeway_request_duration_seconds',
      help: 'Request duration as each side saw it, headers in to body out.',
      labelNames: ['reporter', 'destination_cluster', 'destination_service', 'response_code'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
  }

  record(request: RequestRecord): void {
    const code = String(request.responseCode);
    this.total.inc({
      reporter: request.reporter,
      source_cluster: request.sourceCluster,
      source_workload: request.sourceWorkload,
      destination_cluster: request.destinationCluster,
      destination_service: request.destinationService,
      response_code: code,
      grpc_status: request.grpcStatus,
    });
    this.duration.observe(
      {
        reporter: request.reporter,
        destination_cluster: request.destinationCluster,
        destination_service: request.destinationService,
        response_code: code,
      },
      request.seconds,
    );
  }
}
