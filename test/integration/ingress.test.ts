// The ingress gateway as a user meets it, every part a real process (NATS, a controller and
// an east-west gateway per cluster, apps behind sidecars, the ingress gateway): Gateway API
// routing cases in the manner of the upstream conformance suite (each a request, the
// backend that must answer it, the status and the headers), a ServiceImport backend served
// only by another cluster, reached over mTLS with the gateway's own identity, and failover.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import type { IngressProcess, LocalFederation, SidecarProcess } from '@causeway/cli/local-federation';
import { exportedService } from '@causeway/cli/local-federation';
import { grpcEchoClient } from '@causeway/cli/sample-apps';
import { eventually, grpcurl, repoRoot } from '@causeway/testing';
import { ADMIN_SPELLINGS } from '../support/path-vectors.ts';
import { closeServers, PUBLIC_GATEWAY, send as sendTo, startEcho } from '../support/ingress.ts';
import { startTwoClusters, type TwoClusters } from '../support/two-clusters.ts';

let clusters: TwoClusters | undefined;
let federation: LocalFederation;
let ingress: IngressProcess;
const servers: http.Server[] = [];
const sidecars = new Map<string, SidecarProcess>();

/** An echo app behind a sidecar, as workload `instance` of Service `app` in `cluster`. */
async function echo(cluster: string, app: string, instance: string): Promise<void> {
  const { server, sidecar } = await startEcho(federation, cluster, app, instance);
  servers.push(server);
  sidecars.set(instance, sidecar);
}

const GATEWAY = PUBLIC_GATEWAY;

const parent = `parentRefs: [{ name: public, namespace: edge, sectionName: http }]`;
const backend = (name: string, extra = '') => `{ name: ${name}, port: 80${extra ? `, ${extra}` : ''} }`;

/** A self-signed certificate and key (PEM) for `name`. */
async function selfSigned(name: string): Promise<{ certificate: string; privateKey: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'causeway-ingress-cert-'));
  try {
    await promisify(execFile)('openssl', [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'],
      ...['-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')],
      ...['-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`],
    ]);
    return {
      certificate: await readFile(path.join(dir, 'cert.pem'), 'utf8'),
      privateKey: await readFile(path.join(dir, 'key.pem'), 'utf8'),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const certificates = new Map<string, { certificate: string; privateKey: string }>();

/** Gateway `edge/secure`: two HTTPS listeners on 443, each with its own certificate (TLS Secrets), and a route. */
async function secureGateway(): Promise<string> {
  for (const name of ['secure.example.com', '*.wild.test']) certificates.set(name, await selfSigned(name));
  const secret = (name: string, host: string) => `apiVersion: v1
kind: Secret
metadata: { name: ${name}, namespace: edge }
type: kubernetes.io/tls
stringData:
  tls.crt: ${JSON.stringify(certificates.get(host)!.certificate)}
  tls.key: ${JSON.stringify(certificates.get(host)!.privateKey)}
`;
  return [
    secret('secure-cert', 'secure.example.com'),
    secret('wild-cert', '*.wild.test'),
    `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: secure, namespace: edge }
spec:
  gatewayClassName: causeway
  listeners:
    - name: one
      port: 443
      protocol: HTTPS
      hostname: secure.example.com
      tls: { certificateRefs: [{ name: secure-cert }] }
      allowedRoutes: { namespaces: { from: All } }
    - name: wild
      port: 443
      protocol: HTTPS
      hostname: "*.wild.test"
      tls: { certificateRefs: [{ name: wild-cert }] }
      allowedRoutes: { namespaces: { from: All } }
`,
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: secure, namespace: shop }
spec:
  parentRefs: [{ name: secure, namespace: edge }]
  rules: [{ backendRefs: [{ name: v1, port: 80 }] }]
`,
  ].join('---\n');
}

/** The oldest route: applied (and so created, in file mode) before the others. */
const OLDEST = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: tie-b, namespace: shop }
spec:
  ${parent}
  rules:
    - matches: [{ path: { type: Exact, value: /tie } }]
      backendRefs: [${backend('v2')}]
`;

/** Requests to `hello` that lose their connection are tried again (as a user would set it for failover). */
const HELLO_POLICY = `apiVersion: policy.causeway.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: hello, namespace: shop }
spec:
  targetRefs: [{ group: multicluster.x-k8s.io, kind: ServiceImport, name: hello }]
  retries: { attempts: 3, retryOn: [reset, connect-failure, gateway-error] }
`;

/** Routes in the manner of the conformance suite's HTTPRoute cases. */
const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: matching, namespace: shop }
spec:
  ${parent}
  rules:
    - matches: [{ path: { type: Exact, value: /exact } }]
      backendRefs: [${backend('v1')}]
    - matches: [{ path: { type: PathPrefix, value: /prefix } }]
      backendRefs: [${backend('v2')}]
    - matches: [{ path: { type: PathPrefix, value: /prefix/deeper/ } }]
      backendRefs: [${backend('v3')}]
    - matches: [{ path: { type: RegularExpression, value: "/re/[0-9]+" } }]
      backendRefs: [${backend('v3')}]
    - matches: [{ path: { type: PathPrefix, value: /method }, method: POST }]
      backendRefs: [${backend('v3')}]
    - matches: [{ path: { type: PathPrefix, value: /method } }]
      backendRefs: [${backend('v1')}]
    - matches: [{ path: { type: PathPrefix, value: /query }, queryParams: [{ name: animal, value: whale }] }]
      backendRefs: [${backend('v3')}]
    - matches:
        - { path: { type: PathPrefix, value: /query }, headers: [{ name: Version, value: two }] }
        - { path: { type: PathPrefix, value: /query }, headers: [{ name: Version, type: RegularExpression, value: "thr.e" }] }
      backendRefs: [${backend('v2')}]
    - matches: [{ path: { type: PathPrefix, value: /query } }]
      backendRefs: [${backend('v1')}]
    - matches: [{ path: { type: Exact, value: /split } }]
      backendRefs: [${backend('v1', 'weight: 1')}, ${backend('v2', 'weight: 3')}]
    - matches: [{ path: { type: Exact, value: /ghost } }]
      backendRefs: [${backend('nowhere')}]
    - matches: [{ path: { type: Exact, value: /nothing } }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: filters, namespace: shop }
spec:
  ${parent}
  rules:
    - matches: [{ path: { type: PathPrefix, value: /headers } }]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{ name: X-Set, value: set-by-route }]
            add: [{ name: X-Add, value: added }]
            remove: [X-Remove]
        - type: ResponseHeaderModifier
          responseHeaderModifier:
            set: [{ name: X-Answer, value: from-route }]
            remove: [X-Backend]
      backendRefs: [${backend('v1')}]
    - matches: [{ path: { type: PathPrefix, value: /redirect } }]
      filters:
        - type: RequestRedirect
          requestRedirect: { hostname: example.org, statusCode: 301 }
    - matches: [{ path: { type: PathPrefix, value: /moved } }]
      filters:
        - type: RequestRedirect
          requestRedirect: { scheme: https, path: { type: ReplacePrefixMatch, replacePrefixMatch: /new } }
    - matches: [{ path: { type: PathPrefix, value: /rewrite/prefix } }]
      filters:
        - type: URLRewrite
          urlRewrite: { hostname: rewritten.example.com, path: { type: ReplacePrefixMatch, replacePrefixMatch: /one } }
      backendRefs: [${backend('v2')}]
    - matches: [{ path: { type: PathPrefix, value: /rewrite/full } }]
      filters:
        - type: URLRewrite
          urlRewrite: { path: { type: ReplaceFullPath, replaceFullPath: /replaced } }
      backendRefs: [${backend('v2')}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: hosts-exact, namespace: shop }
spec:
  ${parent}
  hostnames: [exact.example.com]
  rules:
    - backendRefs: [${backend('v3')}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: hosts-wild, namespace: shop }
spec:
  ${parent}
  hostnames: ["*.example.com"]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /only-wild } }]
      backendRefs: [${backend('v1')}]
    - backendRefs: [${backend('v2')}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: tie-a, namespace: shop }
spec:
  ${parent}
  rules:
    - matches: [{ path: { type: Exact, value: /tie } }]
      backendRefs: [${backend('v1')}]
    - matches: [{ path: { type: Exact, value: /tie-name } }]
      backendRefs: [${backend('v1')}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: tie-c, namespace: shop }
spec:
  ${parent}
  rules:
    - matches: [{ path: { type: Exact, value: /tie-name } }]
      backendRefs: [${backend('v3')}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: remote, namespace: shop }
spec:
  ${parent}
  rules:
    - matches: [{ path: { type: PathPrefix, value: /hello } }]
      backendRefs: [{ group: multicluster.x-k8s.io, kind: ServiceImport, name: hello, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: refused, namespace: shop }
spec:
  parentRefs: [{ name: public, namespace: edge, sectionName: tls }]
  rules:
    - backendRefs: [${backend('v1')}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: till, namespace: shop }
spec:
  ${parent}
  hostnames: [grpc.test]
  rules:
    - matches: [{ method: { service: causeway.demo.Echo, method: Say } }]
      backendRefs: [{ group: multicluster.x-k8s.io, kind: ServiceImport, name: till, port: 9000 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: chat, namespace: shop }
spec:
  ${parent}
  rules:
    - matches: [{ path: { type: PathPrefix, value: /chat } }]
      backendRefs: [{ group: multicluster.x-k8s.io, kind: ServiceImport, name: chat, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: framed, namespace: shop }
spec:
  ${parent}
  hostnames: [framed.example.net]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /stall } }]
      timeouts: { request: 500ms }
      backendRefs: [${backend('v1')}]
    - matches: [{ path: { type: PathPrefix, value: /h2c } }]
      backendRefs: [{ group: multicluster.x-k8s.io, kind: ServiceImport, name: till, port: 9000 }]
    - backendRefs: [{ group: multicluster.x-k8s.io, kind: ServiceImport, name: hello, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: mirrored, namespace: shop }
spec:
  ${parent}
  rules:
    - matches: [{ path: { type: PathPrefix, value: /mirrored } }]
      filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: v2, port: 80 } } }]
      backendRefs: [${backend('v1')}]
`;

before(async () => {
  clusters = await startTwoClusters('ingress');
  federation = clusters.federation;
  for (const name of ['v1', 'v2', 'v3']) {
    await federation.apply('east', `${name}.yaml`, exportedService('shop', name, 80, 'http'));
    await echo('east', name, `${name}-east`);
  }
  await federation.apply('west', 'hello.yaml', exportedService('shop', 'hello', 80, 'http'));
  await echo('west', 'hello', 'hello-w1');
  await echo('west', 'hello', 'hello-w2');
  await federation.apply('west', 'till.yaml', exportedService('shop', 'till', 9000, 'grpc', 'grpc'));
  await federation.startSampleWorkload('west', 'shop', 'till', 'grpc');
  await federation.apply('west', 'chat.yaml', exportedService('shop', 'chat', 80, 'http'));
  await federation.startSampleWorkload('west', 'shop', 'chat', 'http');
  await federation.apply('east', 'gateway.yaml', GATEWAY);
  await federation.apply('east', 'secure.yaml', await secureGateway());
  await federation.apply('east', 'hello-policy.yaml', HELLO_POLICY);
  ingress = await federation.startIngressGateway('east', [80, 443], { timeouts: { requestHead: '1s' } });
  await federation.apply('east', 'oldest.yaml', OLDEST);
  await eventually(async () => assert.equal((await send('/tie')).echo?.instance, 'v2-east'), 20_000);
  // Creation times have whole seconds (as in Kubernetes): the others are a second younger.
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  await federation.apply('east', 'routes.yaml', ROUTES);
});

after(async () => {
  await clusters?.dispose();
  closeServers(servers);
});

/** One request to the ingress gateway's listener on port 80. */
const send = (path: string, options?: Parameters<typeof sendTo>[2]) =>
  sendTo(ingress.listeners['80']!, path, options);

/** The conformance-style cases: a request, the backend that answers, the status, what the backend saw. */
const CASES: ReadonlyArray<{
  readonly name: string;
  readonly path: string;
  readonly method?: string;
  readonly host?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly backend?: string;
  /** Bytes of body the backend received. */
  readonly bytes?: number;
  readonly status?: number;
  /** The path the backend received. */
  readonly backendPath?: string;
  readonly backendHost?: string;
  readonly backendHeaders?: Record<string, string | undefined>;
  readonly responseHeaders?: Record<string, string | undefined>;
}> = [
  { name: 'Exact path', path: '/exact', backend: 'v1-east' },
  { name: 'Exact path does not match a longer path', path: '/exact/more', status: 404 },
  { name: 'PathPrefix', path: '/prefix/x', backend: 'v2-east' },
  { name: 'PathPrefix matches the prefix itself', path: '/prefix', backend: 'v2-east' },
  { name: 'PathPrefix matches whole segments only', path: '/prefixed', status: 404 },
  { name: 'the longest prefix wins (trailing slash ignored)', path: '/prefix/deeper', backend: 'v3-east' },
  { name: 'RegularExpression path (full match)', path: '/re/42', backend: 'v3-east' },
  { name: 'RegularExpression does not match a partial path', path: '/re/42/x', status: 404 },
  { name: 'method match wins over no method', path: '/method', method: 'POST', backend: 'v3-east' },
  { name: 'no method match: the rule without one', path: '/method', method: 'GET', backend: 'v1-east' },
  { name: 'query parameter match', path: '/query?animal=whale', backend: 'v3-east' },
  { name: 'query parameter names are case-sensitive', path: '/query?Animal=whale', backend: 'v1-east' },
  {
    name: 'header match (name case-insensitive)',
    path: '/query',
    headers: { version: 'two' },
    backend: 'v2-east',
  },
  {
    name: 'header RegularExpression match',
    path: '/query',
    headers: { version: 'three' },
    backend: 'v2-east',
  },
  {
    name: 'header value mismatch falls through',
    path: '/query',
    headers: { version: 'four' },
    backend: 'v1-east',
  },
  { name: 'an older route wins a tie', path: '/tie', backend: 'v2-east' },
  { name: 'alphabetical order breaks a tie of age', path: '/tie-name', backend: 'v1-east' },
  {
    name: 'exact hostname before wildcard',
    path: '/only-wild',
    host: 'exact.example.com',
    backend: 'v3-east',
  },
  { name: 'wildcard hostname', path: '/', host: 'a.example.com', backend: 'v2-east' },
  {
    name: 'wildcard hostname, its own rule',
    path: '/only-wild',
    host: 'a.b.example.com',
    backend: 'v1-east',
  },
  {
    name: 'Host matched case-insensitively, port ignored',
    path: '/',
    host: 'EXACT.Example.com:80',
    backend: 'v3-east',
  },
  { name: 'a wildcard does not match the bare domain', path: '/only-wild', host: 'example.com', status: 404 },
  { name: 'a backend that does not exist: 500', path: '/ghost', status: 500 },
  { name: 'a rule without backends: 500', path: '/nothing', status: 500 },
  { name: 'no rule matches: 404', path: '/unrouted', status: 404 },
  {
    name: 'RequestHeaderModifier and ResponseHeaderModifier',
    path: '/headers',
    headers: { 'x-add': 'mine', 'x-remove': 'gone', 'x-set': 'mine' },
    backend: 'v1-east',
    backendHeaders: { 'x-set': 'set-by-route', 'x-add': 'mine,added', 'x-remove': undefined },
    responseHeaders: { 'x-answer': 'from-route', 'x-backend': undefined },
  },
  {
    name: 'RequestRedirect: hostname and status',
    path: '/redirect/a?b=c',
    status: 301,
    // (Port 80 with http is left out of the Location.)
    responseHeaders: { location: 'http://example.org/redirect/a?b=c' },
  },
  {
    name: 'RequestRedirect: scheme and prefix replacement',
    path: '/moved/x',
    status: 302,
    responseHeaders: { location: 'https://shop.example.net/new/x' },
  },
  {
    name: 'URLRewrite: hostname and prefix',
    path: '/rewrite/prefix/two?q=1',
    backend: 'v2-east',
    backendPath: '/one/two?q=1',
    backendHost: 'rewritten.example.com',
  },
  { name: 'URLRewrite: full path', path: '/rewrite/full/x', backend: 'v2-east', backendPath: '/replaced' },
  {
    name: 'X-Forwarded-For from an untrusted client is replaced',
    path: '/exact',
    headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-host': 'evil.example' },
    backend: 'v1-east',
    backendHeaders: {
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-host': 'shop.example.net',
      'x-forwarded-proto': 'http',
    },
  },
  {
    name: 'a client cannot strip the forwarded headers through Connection',
    path: '/exact',
    headers: { connection: 'keep-alive, x-forwarded-for, x-forwarded-proto', x_forwarded_for: '203.0.113.9' },
    backend: 'v1-east',
    backendHeaders: {
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      x_forwarded_for: undefined,
    },
  },
  {
    name: 'a body with a content type nobody parses reaches the backend whole',
    path: '/method',
    method: 'POST',
    headers: { 'content-type': 'not a type' },
    body: 'x'.repeat(100_000),
    backend: 'v3-east',
    bytes: 100_000,
  },
  {
    name: 'a path that walks out of its prefix is normalized first',
    path: '/prefix/../exact',
    backend: 'v1-east',
  },
  { name: 'an encoded slash is refused', path: '/prefix%2F..%2Fexact', status: 400 },
];

test('Gateway API routing: every match type, filter and precedence rule (conformance-style cases)', async () => {
  // Routes are in force once the last one answers.
  await eventually(async () => assert.equal((await send('/hello')).status, 200), 20_000);
  const failures: string[] = [];
  for (const c of CASES) {
    const answer = await send(c.path, {
      ...(c.method ? { method: c.method } : {}),
      ...(c.host ? { host: c.host } : {}),
      ...(c.headers ? { headers: c.headers } : {}),
      ...(c.body ? { body: c.body } : {}),
    });
    const problems: string[] = [];
    const status = c.status ?? 200;
    if (answer.status !== status)
      problems.push(`status ${answer.status}, want ${status} (${answer.body.trim().slice(0, 200)})`);
    if (c.backend && answer.echo?.instance !== c.backend)
      problems.push(`answered by ${answer.echo?.instance ?? 'nobody'}, want ${c.backend}`);
    if (c.bytes !== undefined && answer.echo?.bytes !== c.bytes)
      problems.push(`backend received ${answer.echo?.bytes} bytes of body, want ${c.bytes}`);
    if (c.backendPath && answer.echo?.path !== c.backendPath)
      problems.push(`backend saw path ${answer.echo?.path}, want ${c.backendPath}`);
    if (c.backendHost && answer.echo?.host !== c.backendHost)
      problems.push(`backend saw host ${answer.echo?.host}, want ${c.backendHost}`);
    for (const [name, value] of Object.entries(c.backendHeaders ?? {}))
      if (answer.echo?.headers[name] !== value)
        problems.push(`backend saw ${name}: ${answer.echo?.headers[name]}, want ${value}`);
    for (const [name, value] of Object.entries(c.responseHeaders ?? {}))
      if (answer.headers[name] !== value)
        problems.push(`response ${name}: ${String(answer.headers[name])}, want ${value}`);
    if (problems.length)
      failures.push(`${c.name} (${c.method ?? 'GET'} ${c.host ?? ''}${c.path}): ${problems.join('; ')}`);
  }
  assert.deepEqual(failures, []);
});

test('weighted backendRefs split requests by weight', async () => {
  const counts = new Map<string, number>();
  // (On kept-alive connections: many requests per connection after its first bytes were read.)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  for (let i = 0; i < 400; i++) {
    const answer = await send('/split', { agent });
    assert.equal(answer.status, 200);
    counts.set(answer.echo!.instance, (counts.get(answer.echo!.instance) ?? 0) + 1);
  }
  agent.destroy();
  const share = (counts.get('v2-east') ?? 0) / 400;
  assert.ok(Math.abs(share - 0.75) < 0.08, `v2 got ${share} of the requests, want 0.75`);
});

test('a ServiceImport served only by another cluster is reached over mTLS as the gateway, and fails over', async () => {
  const answer = await eventually(async () => {
    const reply = await send('/hello');
    assert.equal(reply.status, 200, reply.body);
    return reply;
  }, 20_000);
  assert.match(answer.echo!.instance, /^hello-w[12]$/);
  // The backend's sidecar saw the gateway's own SPIFFE identity.
  assert.equal(
    answer.echo!.caller,
    `spiffe://${federation.trustDomain}/ns/causeway-system/sa/ingress-gateway`,
  );
  // One west instance stops while requests flow: every request is still answered.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const seen = new Set<string>();
  let failed = 0;
  const load = (async () => {
    for (let i = 0; i < 300; i++) {
      const reply = await send('/hello', { agent });
      if (reply.status === 200) seen.add(reply.echo!.instance);
      else {
        failed++;
        console.log(reply.status, reply.body);
      }
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 200));
  await sidecars.get('hello-w1')!.stop('SIGKILL');
  await load;
  agent.destroy();
  assert.equal(failed, 0, `${failed} requests failed after hello-w1 stopped`);
  const after = await send('/hello');
  assert.equal(after.status, 200);
  assert.equal(after.echo!.instance, 'hello-w2');
});

/** Tunnels the ingress gateway has opened to a service so far (its L4 connection metric). */
async function tunnelsOpened(service: string): Promise<number> {
  const metrics = await (await fetch(`${ingress.adminUrl}/metrics`)).text();
  let total = 0;
  for (const line of metrics.split('\n'))
    if (
      line.startsWith('causeway_tcp_connections_opened_total{') &&
      line.includes(`destination_service="${service}"`)
    )
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
  return total;
}

test('HTTP/1.1 requests go on in pooled mesh tunnels: bodies both ways, the caller stated by the mesh, time limits, an h2c backend', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  const to = (path: string, options: Parameters<typeof send>[1] = {}) =>
    send(path, { host: 'framed.example.net', agent, ...options });
  const gatewayId = `spiffe://${federation.trustDomain}/ns/causeway-system/sa/ingress-gateway`;
  try {
    await eventually(async () => assert.equal((await to('/')).status, 200), 20_000);
    // Bodies past the replay buffer (64 KiB), with a length and chunked; a client's own
    // statement of the caller never reaches the backend.
    const body = 'x'.repeat(300_000);
    const spoofed = {
      'x-forwarded-client-cert': `By=x;URI=spiffe://${federation.trustDomain}/ns/shop/sa/admin`,
    };
    for (const headers of [spoofed, { ...spoofed, 'transfer-encoding': 'chunked' }]) {
      const answer = await to('/upload', { method: 'POST', headers, body });
      assert.equal(answer.status, 200, answer.body);
      assert.equal(answer.echo!.bytes, body.length, JSON.stringify(headers));
      assert.match(answer.echo!.instance, /^hello-w[12]$/);
      assert.equal(answer.echo!.caller, gatewayId);
      assert.equal(answer.echo!.headers['x-forwarded-client-cert']?.includes('sa/admin'), false);
    }
    // Many requests on two kept-alive connections, all answered, over a few tunnels that
    // are lent again from request to request (none per request).
    const opened = await tunnelsOpened('hello.shop.svc.clusterset.local');
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => to(`/n/${i}`)));
    assert.deepEqual(
      answers.map((answer) => [answer.status, answer.echo?.path]),
      answers.map((_, i) => [200, `/n/${i}`]),
    );
    const more = (await tunnelsOpened('hello.shop.svc.clusterset.local')) - opened;
    assert.ok(more <= 4, `${more} tunnels opened for 40 requests on 2 connections`);
    assert.ok(opened >= 1, 'no tunnel carried the requests');
    // An answer a retry policy does not pass on (503 to the first try): tried again, on
    // another tunnel, and answered.
    const retried = await to('/fail-first');
    assert.equal(retried.status, 200, retried.body);
    assert.equal(retried.echo!.headers['x-causeway-attempt'], '2');
    // A backend slower than the route's request timeout: 504 in time, and the tunnel it
    // used is not lent again with the late answer still in it.
    const started = Date.now();
    const late = await to('/stall');
    assert.equal(late.status, 504, late.body);
    assert.ok(Date.now() - started < 2_500, `the timeout took ${Date.now() - started} ms`);
    for (let i = 0; i < 5; i++) {
      const after = await to(`/after/${i}`);
      assert.equal(after.status, 200, after.body);
      assert.equal(after.echo!.path, `/after/${i}`);
    }
    // An h2c backend (a gRPC server) takes no HTTP/1.1: the request reaches it as HTTP/2,
    // and the server answers a request that is not gRPC with 415 (not a gateway's 502).
    const h2c = await to('/h2c');
    assert.equal(h2c.status, 415, `${JSON.stringify(h2c.headers)} ${h2c.body}`);
  } finally {
    agent.destroy();
  }
});

test('GRPCRoute over h2c: a call matched by service and method reaches a ServiceImport of another cluster; an unmatched method is UNIMPLEMENTED', async () => {
  const client = grpcEchoClient(Number(ingress.listeners['80']!.split(':')[1]), 'grpc.test');
  try {
    const reply = await eventually(() => client.say('hello'), 20_000);
    assert.equal(reply.service, 'till');
    assert.equal(reply.cluster, 'west');
    assert.equal(reply.caller, `spiffe://${federation.trustDomain}/ns/causeway-system/sa/ingress-gateway`);
    await assert.rejects(client.chat().send('x'), (error: { code?: number }) => error.code === 12);
  } finally {
    client.close();
  }
  // grpcurl with the repository's .proto (the route carries Say alone, not reflection).
  const proto = ['-import-path', path.join(repoRoot, 'apps/cli/proto'), '-proto', 'causeway/demo/echo.proto'];
  const target = ['-plaintext', '-authority', 'grpc.test', ingress.listeners['80']!];
  const called = JSON.parse(
    await grpcurl([...proto, '-d', '{"message":"via grpcurl"}', ...target, 'causeway.demo.Echo/Say']),
  ) as { cluster: string; message: string };
  assert.deepEqual([called.cluster, called.message], ['west', 'via grpcurl']);
  await assert.rejects(grpcurl([...target, 'list']), /does not support the reflection API/);
});

test('a WebSocket upgrade is routed like a request and carried whole, to another cluster', async () => {
  const socket = new WebSocket(`ws://${ingress.listeners['80']!}/chat/room`, {
    headers: { host: 'shop.example.net' },
  });
  const answers: string[] = [];
  await new Promise<void>((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  for (const message of ['one', 'two']) {
    const answer = new Promise<string>((resolve) => socket.once('message', (data) => resolve(String(data))));
    socket.send(message);
    answers.push(await answer);
  }
  socket.close();
  assert.deepEqual(answers, ['chat-west: one', 'chat-west: two']);
  // An upgrade no route matches is refused before anything is carried.
  const refused = new WebSocket(`ws://${ingress.listeners['80']!}/nowhere`, {
    headers: { host: 'shop.example.net' },
  });
  refused.on('error', () => undefined);
  const status = await new Promise<number>((resolve) =>
    refused.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0)),
  );
  refused.terminate();
  assert.equal(status, 404);
  // Only WebSocket is an upgrade the gateway carries.
  const [host, port] = ingress.listeners['80']!.split(':') as [string, string];
  const other = await new Promise<string>((resolve, reject) => {
    const socket = net.connect({ host, port: Number(port) }, () =>
      socket.write(
        'GET /chat HTTP/1.1\r\nHost: shop.example.net\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n',
      ),
    );
    let answer = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
  assert.match(other, /^HTTP\/1\.1 501 /);
});

test('RequestMirror: the mirror backend gets a copy of the request, body included; the client gets the real answer', async () => {
  const mirrorServer = servers[1]!; // v2-east
  const seen = new Promise<{ path: string; body: string }>((resolve) =>
    mirrorServer.on('request', (request: http.IncomingMessage) => {
      if (!request.url?.startsWith('/mirrored')) return;
      let body = '';
      request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      request.on('end', () => resolve({ path: request.url!, body }));
    }),
  );
  const answer = await send('/mirrored/x?q=1', { method: 'POST', body: 'copy me' });
  assert.equal(answer.status, 200);
  assert.equal(answer.echo?.instance, 'v1-east');
  assert.equal(answer.echo?.bytes, 7);
  assert.deepEqual(await seen, { path: '/mirrored/x?q=1', body: 'copy me' });
});

test('a proxy whose identity is not an ingress gateway identity cannot register as one (it would get the TLS keys)', async () => {
  const impostor = await federation.startIngressGateway(
    'east',
    [80],
    { namespace: 'shop', serviceAccount: 'web' },
    'impostor',
  );
  try {
    const refused = await impostor.waitForLog('discovery error (reconnecting)', 20_000);
    assert.match(String(refused.err), /may not register as an ingress gateway/);
    assert.equal((await fetch(`${impostor.adminUrl}/readyz`)).status, 503);
  } finally {
    await impostor.stop();
  }
});

test('gateway metrics carry reporter="gateway" and the route; every request has an access log line', async () => {
  const before = ingress.logs.filter((entry) => entry.log === 'access').length;
  await send('/exact');
  const metrics = await (await fetch(`${ingress.adminUrl}/metrics`)).text();
  assert.match(
    metrics,
    /causeway_requests_total\{reporter="gateway",source_cluster="east",source_workload="ingress-gateway",destination_cluster="east",destination_service="v1\.shop\.svc\.clusterset\.local",response_code="200",grpc_status="",route="shop\/matching#0"\} \d+/,
  );
  await eventually(async () => {
    const lines = ingress.logs.filter((entry) => entry.log === 'access');
    assert.ok(lines.length > before);
    const last = lines.at(-1)!;
    assert.equal(last.route, 'shop/matching#0');
    assert.equal(last.status, 200);
  });
});

test('slow clients are cut off: a head that never completes gets 408, a connection that says nothing is closed', async () => {
  const [host, port] = ingress.listeners['80']!.split(':') as [string, string];
  const talk = (bytes: string) =>
    new Promise<{ answer: string; ms: number }>((resolve, reject) => {
      const started = Date.now();
      const socket = net.connect({ host, port: Number(port) }, () => {
        if (bytes) socket.write(bytes);
      });
      let answer = '';
      socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
      socket.on('close', () => resolve({ answer, ms: Date.now() - started }));
      socket.on('error', reject);
      socket.setTimeout(15_000, () => socket.destroy(new Error('never closed')));
    });
  const [tlsHost, tlsPort] = ingress.listeners['443']!.split(':') as [string, string];
  const silentTls = new Promise<number>((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect({ host: tlsHost, port: Number(tlsPort) });
    socket.on('close', () => resolve(Date.now() - started));
    socket.on('error', reject);
    socket.setTimeout(15_000, () =>
      socket.destroy(new Error('the TLS port never closed a silent connection')),
    );
  });
  const [partial, silent] = await Promise.all([
    talk('GET /exact HTTP/1.1\r\nHost: shop.example.net\r\n'),
    talk(''),
  ]);
  assert.match(partial.answer, /^HTTP\/1\.1 408 /);
  assert.equal(silent.answer, '');
  await silentTls;
});

test('HTTPS: the certificate is chosen by SNI, the request routed, and a Host for another listener is misdirected (421)', async () => {
  const [host, port] = ingress.listeners['443']!.split(':') as [string, string];
  const get = (servername: string, hostHeader: string, ca: string) =>
    new Promise<{
      status: number;
      subject: string;
      echo?: { instance: string; headers: Record<string, string> };
    }>((resolve, reject) => {
      const request = https.get(
        {
          host,
          port: Number(port),
          servername,
          ca,
          path: '/tls',
          agent: false,
          headers: { host: hostHeader },
        },
        (response) => {
          const subject = String((response.socket as TLSSocket).getPeerCertificate().subject.CN);
          let body = '';
          response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
          response.on('end', () => {
            let echo;
            try {
              echo = JSON.parse(body) as { instance: string; headers: Record<string, string> };
            } catch {
              echo = undefined;
            }
            resolve({ status: response.statusCode!, subject, ...(echo ? { echo } : {}) });
          });
        },
      );
      request.on('error', reject);
    });
  const secure = await eventually(
    () =>
      get('secure.example.com', 'secure.example.com', certificates.get('secure.example.com')!.certificate),
    20_000,
  );
  assert.equal(secure.status, 200);
  assert.equal(secure.subject, 'secure.example.com');
  assert.equal(secure.echo?.instance, 'v1-east');
  assert.equal(secure.echo?.headers['x-forwarded-proto'], 'https');
  const wild = await get('a.wild.test', 'a.wild.test', certificates.get('*.wild.test')!.certificate);
  assert.equal(wild.status, 200);
  assert.equal(wild.subject, '*.wild.test');
  const misdirected = await get(
    'secure.example.com',
    'a.wild.test',
    certificates.get('secure.example.com')!.certificate,
  );
  assert.equal(misdirected.status, 421);
  // A name no listener has: no certificate, no handshake.
  await assert.rejects(
    get('other.example.org', 'other.example.org', certificates.get('secure.example.com')!.certificate),
  );
});

test('path normalization: no spelling of a path that a route leaves out or a policy denies reaches a backend, over HTTP/1.1 and h2c', async () => {
  // `vault.paths.test`: everything to `vault`, whose policy denies /admin. `app.paths.test`:
  // only /app is routed (to v1).
  await federation.apply('east', 'vault.yaml', exportedService('shop', 'vault', 80, 'http'));
  await echo('east', 'vault', 'vault-east');
  await federation.apply(
    'east',
    'paths.yaml',
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: paths, namespace: shop }
spec:
  ${parent}
  hostnames: [vault.paths.test]
  rules: [{ backendRefs: [${backend('vault')}] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: app-only, namespace: shop }
spec:
  ${parent}
  hostnames: [app.paths.test]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /app } }]
      backendRefs: [${backend('v1')}]
---
apiVersion: policy.causeway.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: vault-no-admin, namespace: shop }
spec:
  targetRefs: [{ group: "", kind: Service, name: vault }]
  action: DENY
  rules: [{ to: [{ paths: ["/admin", "/admin/*"] }] }]
`,
  );
  await eventually(async () => {
    assert.equal((await send('/admin', { host: 'vault.paths.test' })).status, 403);
    assert.equal((await send('/books', { host: 'vault.paths.test' })).echo?.instance, 'vault-east');
    assert.equal((await send('/app/x', { host: 'app.paths.test' })).echo?.instance, 'v1-east');
  }, 30_000);
  // What is routed is the normalized path, and that is what the backend gets.
  const walked = await send('/app/./x/../%61ll', { host: 'app.paths.test' });
  assert.equal(walked.echo?.path, '/app/all');
  assert.equal((await send('/app/../admin', { host: 'vault.paths.test' })).status, 403);

  const [host, port] = ingress.listeners['80']!.split(':') as [string, string];
  const h1 = (path: string, authority: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = net.connect({ host, port: Number(port) }, () =>
        socket.write(`GET ${path} HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`),
      );
      let answer = '';
      socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
      socket.on('close', () => resolve(answer.split('\r\n')[0]!));
      socket.on('error', reject);
      socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to ${path}`)));
    });
  const session = http2.connect(`http://${ingress.listeners['80']}`);
  session.on('error', () => undefined); // (each stream then fails on its own)
  const h2 = (path: string, authority: string) =>
    new Promise<number>((resolve, reject) => {
      const stream = session.request({ ':path': path, ':authority': authority });
      stream.setTimeout(10_000, () => stream.close());
      stream.on('response', (headers) => resolve(Number(headers[':status'])));
      stream.on('error', reject);
      stream.on('close', () => reject(new Error(`${path}: the stream closed unanswered`)));
      stream.resume();
      stream.end();
    });
  const reached: string[] = [];
  try {
    for (const [authority, refusals] of [
      ['vault.paths.test', /^HTTP\/1\.1 (400|403) /],
      ['app.paths.test', /^HTTP\/1\.1 (400|404) /],
    ] as const)
      for (const spelling of ADMIN_SPELLINGS) {
        const line = await h1(spelling, authority);
        if (!refusals.test(line)) reached.push(`HTTP/1.1 ${authority}${spelling}: ${line}`);
        const status = await h2(spelling, authority);
        if (!refusals.test(`HTTP/1.1 ${status} `)) reached.push(`HTTP/2 ${authority}${spelling}: ${status}`);
      }
  } finally {
    session.close();
  }
  assert.deepEqual(reached, []);
});

test('new route tables are swapped in under load without a failed request, on kept-alive HTTP/1.1 and h2c connections', async () => {
  const swapRoute = (target: string, extraRoutes: number) =>
    [
      `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: swap, namespace: shop }
spec:
  ${parent}
  hostnames: [swap.example.com]
  rules: [{ backendRefs: [${backend(target)}] }]
`,
      ...Array.from(
        { length: extraRoutes },
        (_, i) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: swap-extra-${i}, namespace: shop }
spec:
  ${parent}
  hostnames: [extra-${i}.example.com]
  rules: [{ matches: [{ path: { type: PathPrefix, value: /x${i} } }], backendRefs: [${backend('v3')}] }]
`,
      ),
    ].join('---\n');
  await federation.apply('east', 'swap.yaml', swapRoute('v1', 0));
  await eventually(
    async () => assert.equal((await send('/', { host: 'swap.example.com' })).echo?.instance, 'v1-east'),
    20_000,
  );
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const served = new Map<string, number>();
  const failed: string[] = [];
  const session = http2.connect(`http://${ingress.listeners['80']}`);
  session.on('error', (error) => failed.push(`the HTTP/2 connection failed: ${error.message}`));
  const h2 = () =>
    new Promise<string>((resolve, reject) => {
      const stream = session.request({ ':path': '/', ':authority': 'swap.example.com' });
      let status = 0;
      let body = '';
      stream.setTimeout(10_000, () => stream.close());
      stream.on('response', (headers) => (status = Number(headers[':status'])));
      stream.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      stream.on('end', () =>
        resolve(status === 200 ? (JSON.parse(body) as { instance: string }).instance : `${status}`),
      );
      stream.on('error', reject);
      stream.on('close', () => reject(new Error(`the stream closed (code ${stream.rstCode})`)));
      stream.end();
    });
  let running = true;
  const loop = async (call: () => Promise<string>) => {
    while (running) {
      const instance = await call().catch((error: Error) => `error ${error.message}`);
      if (instance.endsWith('-east')) served.set(instance, (served.get(instance) ?? 0) + 1);
      else {
        failed.push(instance);
        // (A broken connection fails at once: the loop must not spin without yielding.)
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  };
  const h1 = async () => {
    const answer = await send('/', { host: 'swap.example.com', agent });
    return answer.status === 200 ? answer.echo!.instance : `${answer.status} ${answer.body}`;
  };
  const traffic = Promise.all([loop(h1), loop(h1), loop(h1), loop(h2), loop(h2)]);
  /** The last config the gateway applied: its version and how many routes it had. */
  const applied = () => {
    const last = ingress.logs.findLast((entry) => entry.msg === 'config applied');
    return { version: Number(last?.version ?? 0), routes: Number(last?.routes ?? 0) };
  };
  try {
    // Each step: a new config (more routes, then the backend changed, then routes removed),
    // in force once the gateway has applied it and requests have flowed under it.
    for (const [target, extra] of [
      ['v1', 300],
      ['v2', 300],
      ['v2', 0],
      ['v1', 0],
    ] as const) {
      const before = applied().version;
      const servedBefore = served.get(`${target}-east`) ?? 0;
      await federation.apply('east', 'swap.yaml', swapRoute(target, extra));
      await eventually(async () => {
        const now = applied();
        assert.ok(now.version > before, 'the gateway has not applied a new config');
        // (The extra routes are there, or gone: this step's config is the one in force.)
        assert.ok(extra > 0 ? now.routes > extra : now.routes < 300, `${now.routes} routes in force`);
        assert.ok((served.get(`${target}-east`) ?? 0) > servedBefore + 20, `${target} is not serving yet`);
      }, 30_000);
    }
  } finally {
    running = false;
    await traffic;
    agent.destroy();
    session.close();
  }
  assert.deepEqual(failed, []);
  assert.ok((served.get('v2-east') ?? 0) > 20, JSON.stringify([...served]));
});
