import { Counter, Gauge, type Metric, type Registry } from 'prom-client';

/** One finished request, as either side reports it. */
export interface RequestRecord {
  readonly reporter: 'source' | 'destination' | 'gateway';
  readonly sourceCluster: string;
  readonly sourceWorkload: string;
  readonly destinationCluster: string;
  readonly destinationService: string;
  readonly responseCode: number;
  readonly grpcStatus: string;
  readonly seconds: number;
  /** The ingress gateway's route (`<namespace>/<name>#<rule>`), a label of its metrics only. */
  readonly route?: string;
}

/** One series of a family: its labels, and what was counted under them. */
interface Series {
  readonly labels: Record<string, string | number>;
  count: number;
  sum: number;
  /** Observations per bucket (not cumulative), for a histogram. */
  readonly buckets: Float64Array | undefined;
  /** The histogram series this counter series also feeds (request metrics). */
  timing?: Series;
}

/**
 * A metric family counted on the hot path at the cost of a few map lookups: its series are
 * found by walking one map per label value (values a config already holds, whose hashes are
 * cached), never by building and hashing a key string as prom-client's `inc`/`observe` do.
 * The registry (prom-client) formats it when scraped, like any of its own metrics.
 */
class Family {
  readonly aggregator = 'sum';
  private root = new Map<unknown, unknown>();
  private readonly all: Series[] = [];

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    private readonly labelNames: readonly string[],
    private readonly bounds: readonly number[] = [],
    registry?: Registry,
  ) {
    registry?.registerMetric(this as unknown as Metric);
  }

  /** The series of these label values (in `labelNames` order), made on first use. */
  series(values: ReadonlyArray<string | number>): Series {
    let node = this.root;
    const last = values.length - 1;
    for (let i = 0; i < last; i++) {
      let next = node.get(values[i]) as Map<unknown, unknown> | undefined;
      if (!next) node.set(values[i], (next = new Map()));
      node = next;
    }
    let found = node.get(values[last]) as Series | undefined;
    if (!found) {
      const labels: Record<string, string | number> = {};
      for (let i = 0; i <= last; i++) labels[this.labelNames[i]!] = values[i]!;
      found = {
        labels,
        count: 0,
        sum: 0,
        buckets: this.type === 'histogram' ? new Float64Array(this.bounds.length + 1) : undefined,
      };
      node.set(values[last], found);
      this.all.push(found);
    }
    return found;
  }

  /** One observation of `value` in a histogram series. */
  observe(series: Series, value: number): void {
    series.count++;
    series.sum += value;
    let bucket = 0;
    while (bucket < this.bounds.length && value > this.bounds[bucket]!) bucket++;
    series.buckets![bucket]!++;
  }

  /** prom-client's view, read by the registry when scraped. */
  async get() {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName?: string }> = [];
    for (const series of this.all) {
      if (this.type === 'counter') {
        values.push({ labels: series.labels, value: series.sum });
        continue;
      }
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += series.buckets![i]!;
        const le = i < this.bounds.length ? this.bounds[i]! : '+Inf';
        values.push({
          labels: { le, ...series.labels },
          value: cumulative,
          metricName: `${this.name}_bucket`,
        });
      }
      values.push({ labels: series.labels, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels: series.labels, value: series.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.root = new Map();
    this.all.length = 0;
  }
}

/** The request metrics' names, help texts, labels and buckets. */
export const REQUEST_METRICS = {
  total: {
    name: 'causeway_requests_total',
    help: 'Requests through the sidecar, from the source side and from the destination side.',
    labelNames: [
      'reporter',
      'source_cluster',
      'source_workload',
      'destination_cluster',
      'destination_service',
      'response_code',
      'grpc_status',
    ],
  },
  duration: {
    name: 'causeway_request_duration_seconds',
    help: 'Request duration as each side saw it, headers in to body out.',
    labelNames: ['reporter', 'destination_cluster', 'destination_service', 'response_code'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  },
} as const;

/**
 * Request metrics with Istio's label vocabulary (DESIGN §7), from both sides of a call:
 * `causeway_requests_total` and `causeway_request_duration_seconds`.
 */
export class RequestMetrics {
  private readonly total: Family;
  private readonly duration: Family;

  /** With `route`: the ingress gateway's families, which also have a `route` label. */
  constructor(
    registry: Registry | undefined,
    private readonly route = false,
  ) {
    const { total, duration } = REQUEST_METRICS;
    const extra = route ? ['route'] : [];
    this.total = new Family(total.name, total.help, 'counter', [...total.labelNames, ...extra], [], registry);
    this.duration = new Family(
      duration.name,
      duration.help,
      'histogram',
      [...duration.labelNames, ...extra],
      duration.buckets,
      registry,
    );
  }

  record(request: RequestRecord): void {
    const labels: Array<string | number> = [
      request.reporter,
      request.sourceCluster,
      request.sourceWorkload,
      request.destinationCluster,
      request.destinationService,
      request.responseCode,
      request.grpcStatus,
    ];
    if (this.route) labels.push(request.route ?? '');
    const series = this.total.series(labels);
    series.sum++;
    series.timing ??= this.duration.series(
      this.route
        ? [
            request.reporter,
            request.destinationCluster,
            request.destinationService,
            request.responseCode,
            request.route ?? '',
          ]
        : [request.reporter, request.destinationCluster, request.destinationService, request.responseCode],
    );
    this.duration.observe(series.timing, request.seconds);
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

/** The labels of a policy metric: the caller, the destination, the policy. */
export interface PolicyLabels {
  readonly sourceCluster: string;
  readonly sourceWorkload: string;
  readonly destinationService: string;
  readonly policy: string;
}

/**
 * What TrafficPolicies did to requests, from the caller's side, with the request metrics'
 * destination labels: `causeway_faults_injected_total{fault="delay"|"abort"}`,
 * `causeway_retries_total{reason}`, `causeway_retry_budget_exhausted_total`.
 */
export class PolicyMetrics {
  private readonly faults: Counter;
  private readonly retries: Counter;
  private readonly budgetExhausted: Counter;
  private readonly timeouts: Counter;
  private readonly overflows: Counter;
  private readonly ejections: Counter;

  constructor(
    registry: Registry | undefined,
    /** The endpoints ejected now (outlier detection), for `causeway_outlier_ejected_endpoints`. */
    ejected: () => ReadonlyArray<{ service: string; cluster: string }> = () => [],
    source?: { cluster: string; workload: string },
  ) {
    const registers = registry ? [registry] : [];
    const labelNames = ['source_cluster', 'source_workload', 'destination_service', 'policy'];
    this.faults = new Counter({
      name: 'causeway_faults_injected_total',
      help: 'Faults a TrafficPolicy injected into requests (delays and aborts), by the calling sidecar.',
      labelNames: [...labelNames, 'fault'],
      registers,
    });
    this.retries = new Counter({
      name: 'causeway_retries_total',
      help: 'Requests tried again under a TrafficPolicy, by what the try before got (an HTTP or gRPC status, or connect-failure).',
      labelNames: [...labelNames, 'reason'],
      registers,
    });
    this.timeouts = new Counter({
      name: 'causeway_timeouts_total',
      help: 'Requests answered 504 (gRPC DEADLINE_EXCEEDED) by the calling sidecar: the request, or its last try, ran out of time.',
      labelNames: ['source_cluster', 'source_workload', 'destination_service', 'timeout'],
      registers,
    });
    this.budgetExhausted = new Counter({
      name: 'causeway_retry_budget_exhausted_total',
      help: 'Retries a TrafficPolicy allowed but its retry budget refused (the failure went to the app).',
      labelNames,
      registers,
    });
    this.overflows = new Counter({
      name: 'causeway_circuit_breaker_overflow_total',
      help: 'Requests (or connections) a TrafficPolicy circuit breaker turned away with a fast 503, by the limit they ran into (max-connections, max-pending-requests, max-requests; max-retries: a retry not made).',
      labelNames: [...labelNames, 'reason'],
      registers,
    });
    this.ejections = new Counter({
      name: 'causeway_outlier_ejections_total',
      help: 'Endpoints (a local endpoint, or a remote cluster through its east-west gateway) that outlier detection ejected, by what ejected them.',
      labelNames: [...labelNames, 'destination_cluster', 'reason'],
      registers,
    });
    new Gauge({
      name: 'causeway_outlier_ejected_endpoints',
      help: 'Endpoints of a destination ejected by outlier detection now (a remote cluster counts as its east-west gateway).',
      labelNames: ['source_cluster', 'source_workload', 'destination_service', 'destination_cluster'],
      registers,
      collect() {
        this.reset();
        for (const { service, cluster } of ejected())
          this.inc({
            source_cluster: source?.cluster ?? '',
            source_workload: source?.workload ?? '',
            destination_service: service,
            destination_cluster: cluster,
          });
      },
    });
  }

  overflowed(labels: PolicyLabels & { reason: string }): void {
    this.overflows.inc({ ...this.labels(labels), reason: labels.reason });
  }

  ejected(labels: PolicyLabels & { destinationCluster: string; reason: string }): void {
    this.ejections.inc({
      ...this.labels(labels),
      destination_cluster: labels.destinationCluster,
      reason: labels.reason,
    });
  }

  timedOut(labels: Omit<PolicyLabels, 'policy'> & { timeout: 'request' | 'per-try' }): void {
    this.timeouts.inc({
      source_cluster: labels.sourceCluster,
      source_workload: labels.sourceWorkload,
      destination_service: labels.destinationService,
      timeout: labels.timeout,
    });
  }

  retried(labels: PolicyLabels & { reason: string }): void {
    this.retries.inc({ ...this.labels(labels), reason: labels.reason });
  }

  retryBudgetExhausted(labels: PolicyLabels): void {
    this.budgetExhausted.inc(this.labels(labels));
  }

  private labels(labels: PolicyLabels) {
    return {
      source_cluster: labels.sourceCluster,
      source_workload: labels.sourceWorkload,
      destination_service: labels.destinationService,
      policy: labels.policy,
    };
  }

  faultInjected(labels: PolicyLabels & { fault: 'delay' | 'abort' }): void {
    this.faults.inc({ ...this.labels(labels), fault: labels.fault });
  }
}
