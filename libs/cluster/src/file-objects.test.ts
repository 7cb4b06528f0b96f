import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseObjects } from './file-objects.ts';

const service = `apiVersion: v1
kind: Service
metadata:
  name: cart
  namespace: shop
spec:
  selector: { app: cart }
  ports:
    - name: http
      port: 80
      targetPort: 8080
`;

test('documents of the kinds file mode reads become objects; the namespace defaults to default', () => {
  const parsed = parseObjects(
    'shop.yaml',
    `${service}---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: { name: cart }
---
# an empty document is skipped
`,
  );
  assert.deepEqual(parsed.problems, []);
  assert.deepEqual(
    parsed.objects.map((o) => `${o.kind} ${o.object.metadata.namespace}/${o.object.metadata.name}`),
    ['Service shop/cart', 'ServiceExport default/cart'],
  );
});

test('a malformed object is a problem naming the file, line and field; the other documents still count', () => {
  const parsed = parseObjects(
    'shop.yaml',
    `${service}---
apiVersion: v1
kind: Service
metadata: { name: till, namespace: shop }
spec:
  ports: [{ port: eighty }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: shop }
spec:
  parentRefs: [{ name: cart, kind: Service, group: "" }]
  rules: [{ backendRef: [{ name: cart }] }]
`,
  );
  assert.deepEqual(
    parsed.objects.map((o) => o.object.metadata.name),
    ['cart'],
  );
  assert.equal(parsed.problems.length, 2);
  const [till, route] = parsed.problems;
  assert.equal(till!.file, 'shop.yaml:13');
  assert.equal(till!.kind, 'Service');
  assert.match(till!.message, /^spec\.ports\[0\]\.port: /);
  assert.equal(route!.file, 'shop.yaml:19');
  assert.match(route!.message, /spec\.rules\[0\].*backendRef/);
});

test('a malformed ServiceExport is still listed by name, so its Valid condition can say why', () => {
  const parsed = parseObjects(
    'x.yaml',
    `apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: { name: cart, namespace: shop }
spec: { exportTo: everyone }
`,
  );
  assert.deepEqual(
    parsed.objects.map((o) => [o.kind, o.object.metadata.name, o.object.spec]),
    [['ServiceExport', 'cart', undefined]],
  );
  assert.match(parsed.problems[0]!.message, /spec.*exportTo/);
});

test('wrong apiVersion, unknown kinds and bad names are problems', () => {
  const parsed = parseObjects(
    'x.yaml',
    `apiVersion: v2
kind: Service
metadata: { name: cart }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: cart }
---
apiVersion: v1
kind: Service
metadata: { name: Cart_1 }
`,
  );
  assert.deepEqual(parsed.objects, []);
  assert.deepEqual(
    parsed.problems.map((p) => p.message.split(':')[0]),
    ['apiVersion', 'kind Deployment is not read in file mode (read', 'metadata.name'],
  );
});

test('text that is not YAML is reported with its line and marked unparsed (its old objects are kept)', () => {
  const parsed = parseObjects('x.yaml', 'apiVersion: v1\nkind: Service\nmetadata: [\n');
  assert.equal(parsed.parsed, false);
  assert.deepEqual(parsed.objects, []);
  assert.match(parsed.problems[0]!.message, /^not valid YAML \(line \d+\)/);
});

test('unresolved aliases, alias bombs and cycles are problems, never exceptions', () => {
  const documents = [
    'apiVersion: v1\nkind: Service\nmetadata: { name: a, labels: *nowhere }\n',
    'apiVersion: v1\nkind: Service\nmetadata: &m { name: b, extra: *m }\n',
    `a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [${Array(11).fill('*a').join(', ')}]\nc: [${Array(11).fill('*b').join(', ')}]\n`,
  ];
  for (const text of documents) {
    let parsed;
    assert.doesNotThrow(() => (parsed = parseObjects('x.yaml', text)), text);
    assert.deepEqual(parsed!.objects, [], text);
    assert.equal(parsed!.problems.length, 1, text);
  }
});

test('a creationTimestamp in a file is ignored: the controller dates its objects', () => {
  const parsed = parseObjects(
    'x.yaml',
    'apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: { name: cart, creationTimestamp: "2000-01-01T00:00:00Z" }\n',
  );
  assert.deepEqual(parsed.objects[0]!.object.metadata, { name: 'cart', namespace: 'default' });
});

test('a TrafficPolicy that breaks a rule between its fields is a problem naming the file, line and field', () => {
  const parsed = parseObjects(
    'policies.yaml',
    `apiVersion: policy.causeway.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: fine, namespace: shop }
spec:
  targetRefs: [{ group: '', kind: Service, name: cart }]
  timeouts: { request: 2s }
  retries: { attempts: 3, perTryTimeout: 500ms }
---
apiVersion: policy.causeway.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: slow-tries, namespace: shop }
spec:
  targetRefs: [{ group: '', kind: Service, name: cart }]
  timeouts: { request: 1s }
  retries: { attempts: 3, perTryTimeout: 5s }
---
apiVersion: policy.causeway.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: odd, namespace: shop }
spec:
  targetRefs: [{ group: apps, kind: Deployment, name: cart }]
  faultInjection: { abort: { httpStatus: 503, grpcStatus: 14, percentage: 10 } }
  clusterWeights: [{ cluster: east, weight: 0 }, { cluster: east, weight: 0 }]
`,
  );
  assert.deepEqual(
    parsed.objects.map((o) => o.object.metadata.name),
    ['fine'],
  );
  assert.equal(parsed.problems.length, 2);
  assert.equal(parsed.problems[0]!.file, 'policies.yaml:9');
  assert.equal(parsed.problems[0]!.name, 'slow-tries');
  assert.match(
    parsed.problems[0]!.message,
    /^spec\.retries\.perTryTimeout: 5s is longer than timeouts\.request \(1s\)/,
  );
  assert.equal(parsed.problems[1]!.file, 'policies.yaml:17');
  assert.match(
    parsed.problems[1]!.message,
    /spec\.targetRefs\[0\]\.kind: a TrafficPolicy cannot target apps\/Deployment/,
  );
  assert.match(
    parsed.problems[1]!.message,
    /spec\.faultInjection\.abort: sets both httpStatus and grpcStatus/,
  );
  assert.match(
    parsed.problems[1]!.message,
    /spec\.clusterWeights\[1\]\.cluster: cluster east is weighted a second time \(and 1 more\)$/,
  );
});

test('a TrafficPolicy with a sectionName, a bad header pattern, a day-long delay or a Service and its ServiceImport both is refused', () => {
  const parsed = parseObjects(
    'faults.yaml',
    `apiVersion: policy.causeway.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: chaos, namespace: shop }
spec:
  targetRefs:
    - { group: '', kind: Service, name: cart, sectionName: http }
    - { group: multicluster.x-k8s.io, kind: ServiceImport, name: cart }
  faultInjection:
    delay: { fixedDelay: 25h }
    headers: [{ type: RegularExpression, name: x-chaos, value: "(unclosed" }]
`,
  );
  assert.deepEqual(parsed.objects, []);
  const message = parsed.problems[0]!.message;
  assert.match(message, /spec\.targetRefs\[0\]\.sectionName: .*sectionName is not supported/);
  assert.match(message, /spec\.targetRefs\[1\]: targets service cart a second time/);
  assert.match(message, /spec\.faultInjection\.delay\.fixedDelay: 25h is longer than 1h/);
  assert.match(message, /\(and 1 more\)$/);
});
