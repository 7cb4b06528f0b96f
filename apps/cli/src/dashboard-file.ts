/** Where the generated Grafana dashboard is kept, from the repository's root (see `dashboard.ts`). */
export const DASHBOARD_FILE = 'infra/grafana/causeway-federation.json';
