import { Counter, Histogram, type Registry } from 'prom-client';

/** Label sets whose series are kept at hand. */
const MAX_CACHED_SERIES = 10_000;

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
  private readonly series = new Map<
    string,
    { total: Counter.Internal; duration: Histogram.Internal<string> }
  >();

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
    // The labelled series are looked up once per label set, not hashed on every request.
    const key = `${request.reporter}\n${request.sourceCluster}\n${request.sourceWorkload}\n${request.destinationCluster}\n${request.destinationService}\n${request.responseCode}\n${request.grpcStatus}`;
    let series = this.series.get(key);
    if (!series) {
      const code = String(request.responseCode);
      series = {
        total: this.total.labels({
          reporter: request.reporter,
          source_cluster: request.sourceCluster,
          source_workload: request.sourceWorkload,
          destination_cluster: request.destinationCluster,
          destination_service: request.destinationService,
          response_code: code,
          grpc_status: request.grpcStatus,
        }),
        duration: this.duration.labels({
          reporter: request.reporter,
          destination_cluster: request.destinationCluster,
          destination_service: request.destinationService,
          response_code: code,
        }),
      };
      if (this.series.size >= MAX_CACHED_SERIES) this.series.clear();
      this.series.set(key, series);
    }
    series.total.inc();
    series.duration.observe(request.seconds);
  }
}
