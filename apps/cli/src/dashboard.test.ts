import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { DASHBOARD_FILE, dashboardJson, federationDashboard, panelQueries } from './dashboard.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

test(`${DASHBOARD_FILE} is what the generator makes (run \`npm run dashboard\` after changing it)`, async () => {
  assert.equal(
    await readFile(path.join(root, DASHBOARD_FILE), 'utf8'),
    dashboardJson(),
    `${DASHBOARD_FILE} is stale`,
  );
});

test('the dashboard has a cluster variable and a query on every panel, each filtered by cluster where it can be', () => {
  const dashboard = federationDashboard();
  const variables = dashboard.templating?.list ?? [];
  assert.deepEqual(
    variables.map((variable) => variable.name),
    ['cluster'],
  );
  const panels = (dashboard.panels ?? []).filter((panel) => panel.type !== 'row');
  const queries = panelQueries(dashboard);
  for (const panel of panels)
    assert.ok(
      queries.some((query) => query.panel === panel.title),
      `panel ${panel.title} has no query`,
    );
  // What the issue asks to see, each in some panel.
  for (const metric of [
    'causeway_requests_total',
    'causeway_request_duration_seconds_bucket',
    'causeway_tcp_connections_opened_total',
    'causeway_tcp_sent_bytes_total',
    'causeway_eastwest_connections_total',
    'causeway_eastwest_refused_total',
    'causeway_catalog_sync_lag_seconds_bucket',
    'causeway_catalog_peer_heartbeat_age_seconds',
    'causeway_certificate_expiry_timestamp_seconds',
    'causeway_retries_total',
    'causeway_outlier_ejections_total',
    'causeway_circuit_breaker_overflow_total',
    'causeway_ratelimit_decisions_total',
  ])
    assert.ok(
      queries.some((query) => query.expr.includes(metric)),
      `no panel reads ${metric}`,
    );
  // Per-cluster series follow the variable (the peer-labelled heartbeat and the matrix do not).
  for (const query of queries)
    if (!/heartbeat|\[\$__range\]/.test(query.expr))
      assert.match(query.expr, /cluster=~"\$cluster"/, query.panel);
});
