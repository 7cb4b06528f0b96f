import { copyFile, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import {
  repoRoot,
  startEnvironment,
  startPrometheus,
  type Environment,
  type PrometheusServer,
} from '@causeway/testing';
import {
  exportedService,
  LocalFederation,
  pathPolicy,
  type IngressProcess,
  type SidecarProcess,
} from './local-federation.ts';
import { DASHBOARD_FILE } from './dashboard-file.ts';
import { grpcEchoClient, type EchoReply, type SampleApp } from './sample-apps.ts';

/** One check of the demo scenario. */
export interface DemoCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface DemoResult {
  readonly checks: readonly DemoCheck[];
  readonly ok: boolean;
  readonly clusters: readonly string[];
  readonly durationS: number;
}

const CART = 'cart.shop.svc.clusterset.local';
const TILL = 'till.shop.svc.clusterset.local:9000';
const CALLER = 'spiffe://mesh.local/ns/shop/sa/web';
const GATEWAY_ID = 'spiffe://mesh.local/ns/causeway-system/sa/ingress-gateway';
/** The host the demo's HTTPRoutes serve on east's ingress gateway. */
const SHOP = 'shop.example.com';
/** Requests a client may make to `/limited` per minute (the demo's RateLimitPolicy). */
const LIMIT = 5;

/** East's ingress: a Gateway, the routes users' traffic takes in, and a rate limit. */
const EDGE = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: public, namespace: edge }
spec:
  gatewayClassName: causeway
  listeners: [{ name: http, port: 80, protocol: HTTP, allowedRoutes: { namespaces: { from: All } } }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: storefront, namespace: shop }
spec:
  parentRefs: [{ name: public, namespace: edge }]
  hostnames: [${SHOP}]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /catalog } }]
      backendRefs: [{ group: multicluster.x-k8s.io, kind: ServiceImport, name: catalog, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /split } }]
      backendRefs:
        - { name: cart, port: 80, weight: 3 }
        - { group: multicluster.x-k8s.io, kind: ServiceImport, name: catalog, port: 80, weight: 1 }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: limited, namespace: shop }
spec:
  parentRefs: [{ name: public, namespace: edge }]
  hostnames: [${SHOP}]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /limited } }]
      backendRefs: [{ name: cart, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: till, namespace: shop }
spec:
  parentRefs: [{ name: public, namespace: edge }]
  hostnames: [grpc.${SHOP}]
  rules:
    - backendRefs: [{ group: multicluster.x-k8s.io, kind: ServiceImport, name: till, port: 9000 }]
---
apiVersion: policy.causeway.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: per-client, namespace: shop }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: limited }]
  limits: [{ name: per-client, descriptors: [{ key: remoteAddress }], requests: ${LIMIT}, unit: minute }]
`;

/** Faults in a fifth of the tries to catalog from east, and retries that mask them. */
const FAULTS = `apiVersion: policy.causeway.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: catalog-chaos, namespace: shop }
spec:
  targetRefs: [{ group: multicluster.x-k8s.io, kind: ServiceImport, name: catalog }]
  faultInjection: { abort: { httpStatus: 503, percentage: 20 } }
  retries: { attempts: 8, retryOn: [5xx], budget: { percent: 100, minRetriesPerSecond: 100 } }
`;

/**
 * West's callers eject an endpoint of cart that refuses a connection (for 2 s: its return
 * is seen at once).
 */
const CART_OUTLIERS = `apiVersion: policy.causeway.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: cart-outliers, namespace: shop }
spec:
  targetRefs: [{ group: multicluster.x-k8s.io, kind: ServiceImport, name: cart }]
  outlierDetection: { consecutiveLocalOriginFailures: 1, baseEjectionTime: 2s, maxEjectionPercent: 100 }
`;

/** West's callers send till one call at a time. */
const TILL_BREAKER = `apiVersion: policy.causeway.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: till-breaker, namespace: shop }
spec:
  targetRefs: [{ group: multicluster.x-k8s.io, kind: ServiceImport, name: till }]
  circuitBreaker: { maxRequests: 1 }
`;

/** An answer to one HTTP request. */
interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** One HTTP request to `port` on this machine, naming `authority`. */
function request(port: number, authority: string, requestPath = '/'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const sent = http.get(
      { host: '127.0.0.1', port, path: requestPath, headers: { host: authority }, agent: false },
      (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
      },
    );
    sent.setTimeout(10_000, () => sent.destroy(new Error('timed out')));
    sent.on('error', reject);
  });
}

/** One HTTP call through a sidecar's outbound port (or an ingress listener): the echo's reply. */
async function call(port: number, authority: string, requestPath = '/'): Promise<EchoReply> {
  const answer = await request(port, authority, requestPath);
  if (answer.status !== 200) throw new Error(`${answer.status} ${answer.body.trim()}`);
  return JSON.parse(answer.body) as EchoReply;
}

/** The sum of a counter's series on a component's /metrics whose labels include all of `labels`. */
async function counter(adminUrl: string, name: string, labels: readonly string[] = []): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(`${name}{`) && labels.every((label) => line.includes(label)))
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
  return total;
}

/** Tries until it works or the time is up; the last error explains a failure. */
async function until<T>(what: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await what();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/**
 * The two-cluster demo, on this machine in file mode: NATS and Redis, a trust root and two
 * intermediates, per cluster a federation controller, an east-west gateway and a
 * Prometheus (plus a global one federating them); east also runs an ingress gateway.
 * `cart` (HTTP, in both clusters) and `till` (gRPC) are exported from east, `catalog`
 * (HTTP) only from west, and a client (`web`) runs in west. The scenario checks traffic from
 * outside through east's ingress to west, cross-cluster HTTP and gRPC with the caller's
 * identity, a weighted split, injected faults masked by retries, failover with no failed
 * request, an authorization deny, a rate limit, and the metrics in Prometheus.
 */
export class Demo {
  private env: Environment | undefined;
  private federation: LocalFederation | undefined;
  private dir: string | undefined;
  private client: SidecarProcess | undefined;
  private ingress: IngressProcess | undefined;
  private westCart: { app: SampleApp; sidecar: SidecarProcess } | undefined;
  private catalog: { app: SampleApp; sidecar: SidecarProcess } | undefined;
  /** Per cluster, then the global one (`global`). */
  private readonly prometheus = new Map<string, PrometheusServer>();
  readonly checks: DemoCheck[] = [];

  constructor(
    private readonly say: (line: string) => void,
    /** `L7`: every demo service gets a path rule (allowing all), so the sidecars serve it per request. */
    private readonly mode: 'auto' | 'L7' = 'auto',
  ) {}

  async start(): Promise<void> {
    this.say('starting NATS and Redis...');
    this.env = await startEnvironment({ nats: true, redis: true });
    this.dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-demo-'));
    this.say(
      'creating the trust root and intermediates; starting controllers and east-west gateways for east and west...',
    );
    this.federation = await LocalFederation.start({
      dir: this.dir,
      natsUrl: this.env.nats!.url,
      clusters: ['east', 'west'],
      heartbeatInterval: '500ms',
      workloadGrace: '1s',
      stderr: 'ignore',
    });
    // Watching from the start: the catalog's first sync (below) is in the metrics too.
    await this.startPrometheus();
    const l7 = (name: string, service: string) =>
      this.mode === 'L7' ? [pathPolicy('shop', `${name}-l7`, service, 'ALLOW', ['/*'])] : [];
    await this.federation.apply(
      'east',
      'shop.yaml',
      [
        exportedService('shop', 'cart', 80, 'http'),
        exportedService('shop', 'till', 9000, 'grpc', 'grpc'),
        ...l7('cart', 'cart'),
        ...l7('till', 'till'),
      ].join('---\n'),
    );
    await this.federation.apply(
      'west',
      'shop.yaml',
      [
        exportedService('shop', 'cart', 80, 'http'),
        exportedService('shop', 'catalog', 80, 'http'),
        CART_OUTLIERS,
        ...l7('cart', 'cart'),
        ...l7('catalog', 'catalog'),
      ].join('---\n'),
    );
    await this.federation.apply('east', 'edge.yaml', EDGE);
    if (this.mode === 'L7')
      this.say('L7: every service has a path rule, so each request is authorized on its own');
    this.say(
      'starting sample workloads behind sidecars: east/cart (HTTP), east/till (gRPC), west/catalog (HTTP), west/web (client)...',
    );
    await this.workload('east', 'cart', 'http');
    await this.workload('east', 'till', 'grpc');
    this.catalog = await this.workload('west', 'catalog', 'http');
    this.client = await this.federation.startSidecar('west', { namespace: 'shop', serviceAccount: 'web' });
    await this.writeTargets('west');
    this.say("starting east's ingress gateway (rate limits shared through Redis)...");
    this.ingress = await this.federation.startIngressGateway('east', [80], {
      // (A slow moment of a busy machine is no reason to decide locally for a while.)
      redis: { url: this.env.redis!.url, commandTimeout: '2s' },
    });
    await this.writeTargets('east');
  }

  /** A Prometheus per cluster (scraping its components) and a global one federating them. */
  private async startPrometheus(): Promise<void> {
    this.say('starting a Prometheus per cluster and a global one federating them (infra/prometheus)...');
    const configs = path.join(repoRoot, 'infra/prometheus');
    for (const cluster of ['east', 'west']) {
      const dir = path.join(this.dir!, 'prometheus', cluster);
      await mkdir(path.join(dir, 'targets'), { recursive: true });
      await copyFile(path.join(configs, 'cluster.yml'), path.join(dir, 'prometheus.yml'));
      await this.writeTargets(cluster);
      this.prometheus.set(
        cluster,
        await startPrometheus({
          configFile: path.join(dir, 'prometheus.yml'),
          env: { CAUSEWAY_CLUSTER: cluster },
        }),
      );
    }
    const dir = path.join(this.dir!, 'prometheus', 'global');
    await mkdir(path.join(dir, 'clusters'), { recursive: true });
    await copyFile(path.join(configs, 'global.yml'), path.join(dir, 'prometheus.yml'));
    await writeFile(
      path.join(dir, 'clusters', 'clusters.json'),
      JSON.stringify(
        ['east', 'west'].map((cluster) => ({
          targets: [new URL(this.prometheus.get(cluster)!.url).host],
          labels: { source: cluster },
        })),
      ),
    );
    this.prometheus.set('global', await startPrometheus({ configFile: path.join(dir, 'prometheus.yml') }));
    // Each cluster's controllers scraped once before anything is exported: the catalog's
    // first records then show as a change, not as series that were already there.
    for (const cluster of ['east', 'west'])
      await this.prometheus
        .get(cluster)!
        .waitForQuery('up{component="federation-controller"} == 1', (found) => found.length > 0, 30_000);
  }

  /** The scrape targets of a cluster's Prometheus: every component running there now. */
  private async writeTargets(cluster: string): Promise<void> {
    if (!this.dir) return;
    const federation = this.federation!;
    const local = federation.cluster(cluster);
    const groups = [
      { component: 'federation-controller', urls: [local.controller.adminUrl] },
      { component: 'east-west-gateway', urls: [local.gateway.adminUrl] },
      {
        component: 'sidecar',
        urls: federation
          .allSidecars()
          .filter((sidecar) => sidecar.cluster === cluster && sidecar.child.exitCode === null)
          .map((sidecar) => sidecar.adminUrl),
      },
      {
        component: 'ingress-gateway',
        urls: this.ingress?.cluster === cluster ? [this.ingress.adminUrl] : [],
      },
    ].filter((group) => group.urls.length > 0);
    const file = path.join(this.dir, 'prometheus', cluster, 'targets', 'components.json');
    // Written whole, then moved in place: Prometheus never reads half a file.
    await writeFile(
      `${file}.tmp`,
      JSON.stringify(
        groups.map((group) => ({
          targets: group.urls.map((url) => new URL(url).host),
          labels: { component: group.component },
        })),
      ),
    );
    await rename(`${file}.tmp`, file);
  }

  private async workload(cluster: string, name: string, kind: 'http' | 'grpc') {
    const started = await this.federation!.startSampleWorkload(cluster, 'shop', name, kind);
    if (this.prometheus.size > 0) await this.writeTargets(cluster);
    return started;
  }

  private check(name: string, ok: boolean, detail: string): void {
    this.checks.push({ name, ok, detail });
    this.say(`${ok ? 'PASS' : 'FAIL'} ${name}: ${detail}`);
  }

  /** Set on Ctrl-C: the steps not begun are left out. */
  interrupted = false;

  /** Runs `step`; a step that throws fails the named checks with its message. */
  private async step(names: readonly string[], step: () => Promise<void>): Promise<void> {
    if (this.interrupted) return;
    try {
      await step();
    } catch (error) {
      for (const name of names)
        if (!this.checks.some((check) => check.name === name))
          this.check(name, false, (error as Error).message);
    }
  }

  /** The ingress listener's port on this machine. */
  private get ingressPort(): number {
    return Number(this.ingress!.listeners['80']!.split(':').at(-1));
  }

  /** The scenario; each check is recorded, a failure does not stop the others. */
  async run(): Promise<void> {
    await this.step(['ingress'], () => this.fromOutside());
    const port = this.client!.outboundPort;
    let seenCaller: string | undefined;
    try {
      const reply = await until(() => call(port, CART, '/hello'), 60_000);
      seenCaller = reply.caller;
      this.check(
        'cross-cluster-http',
        reply.cluster === 'east',
        `west/web -> http://${CART}/hello answered by ${reply.instance} in ${reply.cluster}`,
      );
    } catch (error) {
      this.check('cross-cluster-http', false, `west/web -> ${CART}: ${(error as Error).message}`);
    }
    const echo = grpcEchoClient(port, TILL);
    try {
      const reply = await until(() => echo.say('hello over gRPC'), 30_000);
      this.check(
        'cross-cluster-grpc',
        reply.cluster === 'east' && reply.message === 'hello over gRPC',
        `west/web -> ${TILL} causeway.demo.Echo/Say answered by ${reply.instance} in ${reply.cluster}`,
      );
      // In L7 the HTTP server hears the caller from its sidecar too (in L4 only gRPC's does).
      if (this.mode !== 'L7') seenCaller ??= reply.caller;
      this.check(
        'mtls-identity',
        reply.caller === CALLER && seenCaller === CALLER,
        `the servers in east saw the caller as ${reply.caller ?? 'nobody'} (expected ${CALLER})`,
      );
    } catch (error) {
      this.check('cross-cluster-grpc', false, `west/web -> ${TILL}: ${(error as Error).message}`);
      this.check('mtls-identity', false, 'no gRPC answer to read the caller from');
    } finally {
      echo.close();
    }
    await this.step(['weighted-split'], () => this.weightedSplit());
    await this.step(['fault-injection', 'retries'], () => this.faults());
    await this.step(['failover'], () => this.failover(port));
    await this.step(['authz-deny'], () => this.deny());
    await this.step(['rate-limit'], () => this.rateLimit());
    await this.step(['circuit-breaker'], () => this.breaker());
    await this.step(['eastwest-refusal'], () => this.stranger());
    await this.step(['metrics-scraped'], () => this.scraped());
  }

  /** From outside: east's ingress to a service only west has, over mTLS as the gateway. */
  private async fromOutside(): Promise<void> {
    this.say(
      `from outside: http://${SHOP}/catalog/items through east's ingress (catalog runs only in west)...`,
    );
    const reply = await until(() => call(this.ingressPort, SHOP, '/catalog/items'), 60_000);
    this.check(
      'ingress',
      reply.cluster === 'west' && reply.caller === GATEWAY_ID,
      `curl -H 'host: ${SHOP}' http://${this.ingress!.listeners['80']}/catalog/items answered by ${reply.instance} in ${reply.cluster}, which saw the caller as ${reply.caller ?? 'nobody'}`,
    );
  }

  /** `/split` sends 3 of 4 requests to east's cart and 1 to west's catalog (backendRef weights). */
  private async weightedSplit(): Promise<void> {
    this.say('a weighted split at the ingress: /split goes 3:1 to cart (east) and catalog (west)...');
    const counts = { cart: 0, catalog: 0 };
    for (let batch = 0; batch < 20; batch++) {
      const replies = await Promise.all(
        Array.from({ length: 10 }, () => call(this.ingressPort, SHOP, `/split/${batch}`)),
      );
      for (const reply of replies) counts[reply.service === 'catalog' ? 'catalog' : 'cart']++;
    }
    const share = counts.catalog / (counts.cart + counts.catalog);
    this.check(
      'weighted-split',
      Math.abs(share - 0.25) <= 0.15,
      `200 requests to /split: ${counts.cart} to cart in east, ${counts.catalog} to catalog in west (${Math.round(share * 100)}% to catalog; the weights say 25%)`,
    );
  }

  /** A TrafficPolicy aborts a fifth of the tries to catalog; its retries mask every one. */
  private async faults(): Promise<void> {
    this.say('injecting faults: 20% of the tries to catalog from east abort with 503; retries mask them...');
    const admin = this.ingress!.adminUrl;
    const injected = () => counter(admin, 'causeway_faults_injected_total');
    const retried = () => counter(admin, 'causeway_retries_total');
    await this.federation!.apply('east', 'faults.yaml', FAULTS);
    // In force once the gateway injects its first fault.
    const before = await injected();
    await until(async () => {
      await request(this.ingressPort, SHOP, '/catalog/warm-up');
      if ((await injected()) === before) throw new Error('the fault policy never reached the gateway');
    }, 30_000);
    const [faultsBefore, retriesBefore] = [await injected(), await retried()];
    let failed = 0;
    for (let batch = 0; batch < 10; batch++) {
      const answers = await Promise.all(
        Array.from({ length: 10 }, () => request(this.ingressPort, SHOP, `/catalog/${batch}`)),
      );
      failed += answers.filter((answer) => answer.status !== 200).length;
    }
    const faults = (await injected()) - faultsBefore;
    const retries = (await retried()) - retriesBefore;
    this.check(
      'fault-injection',
      faults > 0,
      `100 requests to catalog through east's ingress: ${faults} tries aborted by the TrafficPolicy (causeway_faults_injected_total)`,
    );
    this.check(
      'retries',
      failed === 0 && retries > 0,
      `${retries} retries (causeway_retries_total) masked them: ${100 - failed} of 100 requests answered 200`,
    );
  }

  /** A local cart in west takes the traffic; stopped mid-stream, east takes over; back, west again. */
  private async failover(port: number): Promise<void> {
    this.say('starting a local cart in west: traffic should prefer it...');
    const ejections = () => counter(this.client!.adminUrl, 'causeway_outlier_ejections_total');
    const ejectedBefore = await ejections();
    this.westCart = await this.workload('west', 'cart', 'http');
    try {
      await until(async () => {
        const reply = await call(port, CART);
        if (reply.cluster !== 'west') throw new Error(`still answered by ${reply.cluster}`);
      }, 30_000);
    } catch (error) {
      this.check('failover', false, `the local cart never took the traffic: ${(error as Error).message}`);
      return;
    }
    const counts = { west: 0, east: 0 };
    const failures: string[] = [];
    let running = true;
    const traffic = (async () => {
      while (running) {
        const batch = await Promise.allSettled(Array.from({ length: 4 }, () => call(port, CART)));
        for (const outcome of batch) {
          if (outcome.status === 'fulfilled') counts[outcome.value.cluster === 'west' ? 'west' : 'east']++;
          else failures.push(String(outcome.reason));
        }
      }
    })();
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const before = { ...counts };
      this.say(
        `stopping west's cart (its sidecar and app) while requests flow (${before.west} served locally so far)...`,
      );
      await this.westCart.sidecar.stop();
      await this.westCart.app.close();
      await this.writeTargets('west');
      await until(async () => {
        if (counts.east < before.east + 20)
          throw new Error(`only ${counts.east - before.east} answers from east`);
      }, 30_000).catch(() => {});
      const duringOutage = counts.east - before.east;
      this.say(`east answered ${duringOutage} requests; starting west's cart again...`);
      this.westCart = await this.workload('west', 'cart', 'http');
      const westAtRestart = counts.west;
      const returned = await until(async () => {
        if (counts.west < westAtRestart + 20) throw new Error('traffic has not returned to west');
      }, 30_000).then(
        () => true,
        () => false,
      );
      running = false;
      await traffic;
      const total = counts.west + counts.east + failures.length;
      this.check(
        'failover',
        failures.length === 0 && duringOutage >= 20 && returned,
        `${total} requests while west's cart was stopped and restarted: ${counts.west} answered in west, ${counts.east} in east, ${failures.length} failed${returned ? '; traffic returned to west' : '; traffic did NOT return to west'}${failures.length > 0 ? ` (first failure: ${failures[0]})` : ''}`,
      );
      const ejected = (await ejections()) - ejectedBefore;
      this.check(
        'outlier-ejection',
        ejected > 0,
        `west/web's sidecar ejected the stopped endpoint ${ejected} time(s) (TrafficPolicy outlierDetection; causeway_outlier_ejections_total)`,
      );
    } finally {
      running = false;
      await traffic;
    }
  }

  /** An AuthorizationPolicy in west denies a path of catalog: refused there, never served. */
  private async deny(): Promise<void> {
    this.say("west denies /catalog/admin/* on catalog (AuthorizationPolicy): east's ingress tries it...");
    await this.federation!.apply(
      'west',
      'deny.yaml',
      pathPolicy('shop', 'catalog-admin', 'catalog', 'DENY', ['/catalog/admin/*']),
    );
    const answer = await until(async () => {
      const got = await request(this.ingressPort, SHOP, '/catalog/admin/keys');
      if (got.status !== 403) throw new Error(`the deny is not in force yet (${got.status})`);
      return got;
    }, 30_000);
    const served = this.catalog!.app.served();
    const again = await request(this.ingressPort, SHOP, '/catalog/admin/keys');
    const unseen = this.catalog!.app.served() === served;
    const allowed = await request(this.ingressPort, SHOP, '/catalog/items');
    this.check(
      'authz-deny',
      again.status === 403 && unseen && allowed.status === 200,
      `GET /catalog/admin/keys through east's ingress: ${answer.status} ${answer.body.trim()} (catalog's app never saw it); /catalog/items: ${allowed.status}`,
    );
  }

  /** A RateLimitPolicy on the `limited` route: ${LIMIT} requests a minute per client address. */
  private async rateLimit(): Promise<void> {
    this.say(
      `a rate limit at east's ingress: /limited allows ${LIMIT} requests a minute per client (Redis)...`,
    );
    // In force once its answers carry the limit's headers; each of those is a decision.
    const first = await until(async () => {
      const got = await request(this.ingressPort, SHOP, '/limited');
      if (got.headers['ratelimit-policy'] === undefined) throw new Error('the limit is not in force yet');
      return got;
    }, 30_000);
    const local = () => counter(this.ingress!.adminUrl, 'causeway_ratelimit_fallback_total');
    const localBefore = await local();
    const answers = [first];
    for (let i = 0; i < LIMIT + 5; i++) answers.push(await request(this.ingressPort, SHOP, '/limited'));
    const decidedLocally = (await local()) - localBefore;
    const passed = answers.filter((answer) => answer.status === 200).length;
    const limited = answers.filter((answer) => answer.status === 429);
    this.check(
      'rate-limit',
      // (Decisions Redis could not answer in time are made by the local limiter, which
      // allows its own share: each is said in the detail.)
      (passed === LIMIT || (decidedLocally > 0 && passed <= 2 * LIMIT)) &&
        limited.length === answers.length - passed &&
        limited.length > 0 &&
        limited.every((a) => a.headers['retry-after']),
      `${answers.length} requests to /limited: ${passed} answered, ${limited.length} refused with 429 (Retry-After: ${String(limited[0]?.headers['retry-after'] ?? 'none')} s, RateLimit-Policy: ${String(first.headers['ratelimit-policy'])})${decidedLocally > 0 ? `; ${decidedLocally} decided locally (Redis did not answer in time)` : ''}`,
    );
  }

  /** A circuit breaker lets one call to till through at a time; the others get UNAVAILABLE at once. */
  private async breaker(): Promise<void> {
    this.say('a circuit breaker in west: one call at a time to till (maxRequests: 1), 20 at once...');
    await this.federation!.apply('west', 'breaker.yaml', TILL_BREAKER);
    const overflow = () => counter(this.client!.adminUrl, 'causeway_circuit_breaker_overflow_total');
    const before = await overflow();
    const echo = grpcEchoClient(this.client!.outboundPort, TILL);
    try {
      let answered = 0;
      let refused = 0;
      await until(async () => {
        const calls = await Promise.allSettled(Array.from({ length: 20 }, () => echo.say('at once')));
        answered += calls.filter((call) => call.status === 'fulfilled').length;
        refused += calls.filter((call) => call.status === 'rejected').length;
        if ((await overflow()) === before) throw new Error('the circuit breaker never reached west/web');
      }, 30_000);
      this.check(
        'circuit-breaker',
        answered > 0 && refused > 0,
        `calls to till from west/web, 20 at a time: ${answered} answered, ${refused} refused at once with UNAVAILABLE (causeway_circuit_breaker_overflow_total +${(await overflow()) - before})`,
      );
    } finally {
      echo.close();
    }
  }

  /** A TLS connection to east's east-west gateway naming no exported service is refused and counted. */
  private async stranger(): Promise<void> {
    this.say(
      "a stranger knocks at east's east-west gateway (a TLS connection naming no exported service)...",
    );
    const east = this.federation!.cluster('east');
    const refusals = () => counter(east.gateway.adminUrl, 'causeway_eastwest_refused_total');
    const before = await refusals();
    const [host, port] = east.gatewayAddress.split(':') as [string, string];
    const outcome = await new Promise<string>((resolve) => {
      const socket = tls.connect({
        host,
        port: Number(port),
        servername: 'stranger.example.com',
        rejectUnauthorized: false,
      });
      socket.setTimeout(5_000, () => socket.destroy(new Error('no answer in 5 s')));
      socket.once('secureConnect', () => {
        socket.destroy();
        resolve('a handshake was completed');
      });
      socket.once('error', (error) => resolve(`refused (${error.message})`));
      socket.once('close', () => resolve('closed before any handshake'));
    });
    const counted = await until(async () => {
      const now = await refusals();
      if (now === before) throw new Error('the refusal was not counted');
      return now - before;
    }, 10_000).catch(() => 0);
    this.check(
      'eastwest-refusal',
      outcome !== 'a handshake was completed' && counted > 0,
      `TLS to ${east.gatewayAddress} as stranger.example.com: ${outcome}; causeway_eastwest_refused_total +${counted}`,
    );
  }

  /** The global Prometheus has every cluster's request metrics, the gateway's included. */
  private async scraped(): Promise<void> {
    this.say('reading the metrics back from the global Prometheus (federating east and west)...');
    const global = this.prometheus.get('global')!;
    const samples = await global.waitForQuery(
      'sum by (cluster, reporter) (causeway_requests_total)',
      (found) =>
        ['east', 'west'].every((cluster) => found.some((sample) => sample.metric.cluster === cluster)) &&
        found.some((sample) => sample.metric.reporter === 'gateway'),
      60_000,
    );
    this.check(
      'metrics-scraped',
      true,
      `causeway_requests_total in the global Prometheus (${global.url}): ${samples
        .map((sample) => `${sample.metric.cluster}/${sample.metric.reporter} ${sample.value}`)
        .join(', ')}`,
    );
  }

  /** Lines of live traffic: where `cart` is answered from, and what Prometheus says. */
  async sample(): Promise<string[]> {
    const port = this.client!.outboundPort;
    const [replies] = await Promise.all([
      Promise.allSettled(Array.from({ length: 10 }, () => call(port, CART))),
      Promise.allSettled(Array.from({ length: 5 }, () => request(this.ingressPort, SHOP, '/split/live'))),
    ]);
    const by = new Map<string, number>();
    let failed = 0;
    for (const reply of replies) {
      if (reply.status === 'fulfilled') by.set(reply.value.instance, (by.get(reply.value.instance) ?? 0) + 1);
      else failed++;
    }
    const answered = [...by].map(([instance, count]) => `${instance} ${count}`).join(', ');
    const lines = [`west/web -> ${CART}: ${answered || 'no answer'}${failed ? `, ${failed} failed` : ''}`];
    const global = this.prometheus.get('global');
    if (global)
      lines.push(await livePrometheus(global).catch((error: Error) => `Prometheus: ${error.message}`));
    return lines;
  }

  /** Where to look: the ingress, each Prometheus, the admin ports. */
  endpoints(): string[] {
    const lines = [`ingress (east):          http://${this.ingress?.listeners['80']}  (Host: ${SHOP})`];
    for (const [name, server] of this.prometheus) lines.push(`Prometheus ${name.padEnd(13)} ${server.url}`);
    for (const cluster of this.federation?.clusters.values() ?? []) {
      lines.push(`${cluster.name} controller admin   ${cluster.controller.adminUrl}/metrics`);
      lines.push(`${cluster.name} east-west admin    ${cluster.gateway.adminUrl}/metrics`);
    }
    if (this.ingress) lines.push(`east ingress admin      ${this.ingress.adminUrl}/metrics`);
    lines.push(
      `Grafana dashboard       ${path.join(repoRoot, DASHBOARD_FILE)} (data source uid causeway-global: the global Prometheus)`,
    );
    if (this.client && this.ingress)
      lines.push(
        `gRPC through the mesh:  grpcurl -plaintext -authority ${TILL} 127.0.0.1:${this.client.outboundPort} list`,
        `gRPC through the ingress: grpcurl -plaintext -authority grpc.${SHOP} -d '{"message":"hi"}' ${this.ingress.listeners['80']} causeway.demo.Echo/Say`,
      );
    return lines;
  }

  result(startedAt: number): DemoResult {
    return {
      checks: this.checks,
      ok: this.checks.length > 0 && this.checks.every((check) => check.ok),
      clusters: ['east', 'west'],
      durationS: Math.round((Date.now() - startedAt) / 100) / 10,
    };
  }

  /** Stops every process and server the demo started. */
  async stop(): Promise<void> {
    try {
      await this.federation?.stop();
    } finally {
      for (const server of this.prometheus.values()) await server.dispose().catch(() => {});
      await this.env?.dispose();
      if (this.dir) await rm(this.dir, { recursive: true, force: true });
    }
  }
}

/** Request rate per route and per serving cluster, success rate and p99, from the global Prometheus. */
async function livePrometheus(global: PrometheusServer): Promise<string> {
  const round = (value: number) => Math.round(value * 10) / 10;
  const byRoute = await global.query(
    'sum by (route) (rate(causeway_requests_total{reporter="gateway"}[30s]))',
  );
  const byCluster = await global.query(
    'sum by (destination_cluster) (rate(causeway_requests_total{reporter="source"}[30s]))',
  );
  const success = await global.query(
    'sum(rate(causeway_requests_total{reporter="source",response_code!~"5.."}[30s])) / sum(rate(causeway_requests_total{reporter="source"}[30s]))',
  );
  const p99 = await global.query(
    'histogram_quantile(0.99, sum by (le) (rate(causeway_request_duration_seconds_bucket{reporter="source"}[30s])))',
  );
  // Busiest first; series of requests that reached no cluster (`unknown`) are left out.
  const list = (samples: typeof byRoute, label: string) =>
    samples
      .filter((sample) => sample.metric[label] && sample.metric[label] !== 'unknown')
      .sort((a, b) => b.value - a.value)
      .map((sample) => `${sample.metric[label]} ${round(sample.value)}/s`)
      .join(', ') || 'none yet';
  const ratio = success[0]?.value;
  const latency = p99[0]?.value;
  return `Prometheus: ingress routes ${list(byRoute, 'route')}; served by ${list(byCluster, 'destination_cluster')}; success ${ratio === undefined || Number.isNaN(ratio) ? '-' : `${round(ratio * 100)}%`}; p99 ${latency === undefined || Number.isNaN(latency) ? '-' : `${round(latency * 1000)} ms`}`;
}

/** `causeway demo`: the scenario, then (without `--once`) a live view until Ctrl-C. */
export async function runDemo(options: {
  once: boolean;
  json: boolean;
  mode?: 'auto' | 'L7';
}): Promise<number> {
  const startedAt = Date.now();
  const say = (line: string): void => void process.stderr.write(`causeway demo: ${line}\n`);
  const demo = new Demo(say, options.mode ?? 'auto');
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopping ??= demo.stop());
  let interrupted = false;
  const onSignal = (): void => {
    // A second Ctrl-C: no more waiting for the step under way, but nothing is left running.
    if (interrupted) {
      say('stopping now...');
      void stop().finally(() => process.exit(130));
      return;
    }
    interrupted = true;
    demo.interrupted = true;
    say('stopping every process (after the step under way)...');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await demo.start();
    if (!interrupted) await demo.run();
    const result = demo.result(startedAt);
    if (options.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else
      process.stdout.write(
        `\n${result.checks.map((check) => `${check.ok ? 'PASS' : 'FAIL'}  ${check.name.padEnd(19)} ${check.detail}`).join('\n')}\n\n`,
      );
    // With --json, stdout holds the JSON object alone.
    const view = options.json ? process.stderr : process.stdout;
    view.write(`${demo.endpoints().join('\n')}\n\n`);
    if (!options.once && !interrupted) {
      say(
        "live view: west/web calls cart, and outside clients east's ingress, every second; the rates come from the global Prometheus. Stop a workload or press Ctrl-C to end",
      );
      while (!interrupted) {
        const [first, ...rest] = await demo.sample();
        const time = new Date().toISOString().slice(11, 19);
        view.write(`${time}  ${first}\n${rest.map((line) => `          ${line}\n`).join('')}`);
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
    await stop();
    say('stopped; no process left behind.');
    return result.ok ? 0 : 1;
  } catch (error) {
    say(`the demo failed: ${error instanceof Error ? error.message : String(error)}`);
    await stop();
    if (options.json)
      process.stdout.write(
        `${JSON.stringify({ ...demo.result(startedAt), ok: false, error: String(error) })}\n`,
      );
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
