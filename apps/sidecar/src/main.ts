import { runComponent } from '@causeway/runtime';

await runComponent({
  name: 'sidecar',
  description:
    "Per-workload proxy: routes the app's outbound calls (local or through a remote east-west gateway) over mTLS, and terminates inbound mTLS with authorization.",
  status:
    'this build serves the admin port only (/livez, /readyz, /metrics); the role above is not built yet.',
  defaultAdminAddress: '127.0.0.1:15020',
  start: async () => ({ readiness: () => ({ ready: true }), stop: async () => {} }),
});
