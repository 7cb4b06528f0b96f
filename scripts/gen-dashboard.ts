// Writes the federated Grafana dashboard (apps/cli/src/dashboard.ts) to
// infra/grafana/causeway-federation.json.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DASHBOARD_FILE, dashboardJson } from '../apps/cli/src/dashboard.ts';

const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', DASHBOARD_FILE);
await mkdir(path.dirname(file), { recursive: true });
await writeFile(file, dashboardJson());
console.log(`wrote ${DASHBOARD_FILE}`);
