// A component with no settings file: what every component shares (flags, environment,
// admin port, graceful stop), tested without the needs of any real one.
import { runComponent } from '@causeway/runtime';

await runComponent({
  name: 'bare',
  description: 'A component with nothing to do, for the tests of what every component shares.',
  status: 'a test fixture.',
  defaultAdminAddress: '127.0.0.1:15099',
  start: async () => ({ readiness: () => ({ ready: true }), stop: async () => {} }),
});
