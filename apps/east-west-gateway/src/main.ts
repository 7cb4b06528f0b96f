import { runComponent } from '@causeway/runtime';

await runComponent({
  name: 'east-west-gateway',
  description:
    'Cross-cluster entry of a cluster: reads the SNI of mTLS connections from other clusters and passes them through, unterminated, to local workloads of exported services.',
  status:
    'this build serves the admin port only (/livez, /readyz, /metrics); the role above is not built yet.',
  defaultAdminAddress: '127.0.0.1:15040',
  start: async () => ({ readiness: () => ({ ready: true }), stop: async () => {} }),
});
