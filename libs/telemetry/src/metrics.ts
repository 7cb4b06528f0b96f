import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/** A component's own metrics registry, with process metrics and a build-info gauge. */
export function createRegistry(options: { component: string; version: string }): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const info = new Gauge({
    name: 'causeway_build_info',
    help: 'Always 1; labels name the Causeway component and version.',
    labelNames: ['component', 'version'],
    registers: [registry],
  });
  info.set({ component: options.component, version: options.version }, 1);
  return registry;
}
