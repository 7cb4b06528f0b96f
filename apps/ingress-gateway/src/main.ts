import { runComponent } from '@causeway/runtime';

await runComponent({
  name: 'ingress-gateway',
  description:
    'North-south entry of a cluster: Gateway API HTTPRoute/GRPCRoute routing, TLS termination and global rate limits.',
  status:
    'this build serves the admin port only (/livez, /readyz, /metrics); the role above is not built yet.',
  defaultAdminAddress: '127.0.0.1:15030',
  start: async () => ({ readiness: () => ({ ready: true }), stop: async () => {} }),
});
