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

/** One finished connection carried whole (L4), as either side reports it. */
export interface ConnectionRecord {
  readonly reporter: 'source' | 'destination';
  readonly sourceCluster: string;
  readonly sourceWorkload: string;
  readonly destinationCluster: string;
  readonly destinationService: string;
  /** Bytes from the caller towards the server, and back. */
  readonly sentBytes: number;
  readonly receivedBytes: number;
}

/**
 * Connection metrics of the L4 mode, with the request metrics' labels (Istio's
 * `istio_tcp_*` vocabulary): `causeway_tcp_connections_opened_total`,
 * `causeway_tcp_connections_closed_total`, `causeway_tcp_sent_bytes_total` (caller to
 * server) and `causeway_tcp_received_bytes_total` (server to caller).
 */
export class ConnectionMetrics {
  private readonly opened: Counter;
  private readonly closed: Counter;
  private readonly sent: Counter;
  private readonly received: Counter;

  constructor(registry: Registry | undefined) {
    const registers = registry ? [registry] : [];
    const labelNames = [
      'reporter',
      'source_cluster',
      'source_workload',
      'destination_cluster',
      'destination_service',
    ];
    const counter = (name: string, help: string) => new Counter({ name, help, labelNames, registers });
    this.opened = counter(
      'causeway_tcp_connections_opened_total',
      'Connections carried whole (L4 mode), when they open.',
    );
    this.closed = counter(
      'causeway_tcp_connections_closed_total',
      'Connections carried whole (L4 mode), when they close.',
    );
    this.sent = counter(
      'causeway_tcp_sent_bytes_total',
      'Bytes of L4 connections from the caller towards the server.',
    );
    this.received = counter(
      'causeway_tcp_received_bytes_total',
      'Bytes of L4 connections from the server back to the caller.',
    );
  }

  private labels(record: Omit<ConnectionRecord, 'sentBytes' | 'receivedBytes'>) {
    return {
      reporter: record.reporter,
      source_cluster: record.sourceCluster,
      source_workload: record.sourceWorkload,
      destination_cluster: record.destinationCluster,
      destination_service: record.destinationService,
    };
  }

  open(record: Omit<ConnectionRecord, 'sentBytes' | 'receivedBytes'>): void {
    this.opened.inc(this.labels(record));
  }

  close(record: ConnectionRecord): void {
    const labels = this.labels(record);
    this.closed.inc(labels);
    this.sent.inc(labels, record.sentBytes);
    this.received.inc(labels, record.receivedBytes);
  }
}
