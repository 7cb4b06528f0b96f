import { runComponent } from '@causeway/runtime';

await runComponent({
  name: 'federation-controller',
  description:
    "Per-cluster federation controller: publishes the cluster's ServiceExports to the clusterset over NATS, imports the other clusters' exports as ServiceImports, signs workload certificates and serves config to the local proxies.",
  status:
    'this build serves the admin port only (/livez, /readyz, /metrics); the role above is not built yet.',
  defaultAdminAddress: '127.0.0.1:15010',
  start: async () => ({ readiness: () => ({ ready: true }), stop: async () => {} }),
});
