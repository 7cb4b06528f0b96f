import { Command, InvalidArgumentError } from 'commander';
import type { ControllerStatus } from '@causeway/discovery';
import { formatTable } from './table.ts';

const DEFAULT_CONTROLLER = 'http://127.0.0.1:15010';

class StatusError extends Error {
  readonly code = 'CAUSEWAY_CLI_STATUS';
}

function adminUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
    return url.origin;
  } catch {
    throw new InvalidArgumentError(`'${value}' is not an http(s) URL of an admin port`);
  }
}

const collect = (value: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  adminUrl(value),
];

/** Reads `/debug/catalog` from a controller's admin port. */
export async function fetchStatus(controller: string): Promise<ControllerStatus> {
  let response: Response;
  try {
    response = await fetch(`${controller}/debug/catalog`, { signal: AbortSignal.timeout(5_000) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    throw new StatusError(
      `cannot reach the federation controller's admin port at ${controller} (${cause}); pass --controller URL`,
    );
  }
  if (!response.ok)
    throw new StatusError(
      `${controller}/debug/catalog answered ${response.status}: is it a federation controller?`,
    );
  return (await response.json()) as ControllerStatus;
}

const seconds = (value: number | undefined): string =>
  value === undefined ? '-' : value < 1 ? `${Math.round(value * 1000)}ms` : `${value.toFixed(1)}s`;

const portsOf = (ports: ControllerStatus['services'][number]['ports']): string =>
  ports.map((p) => `${p.port}/${p.protocol}${p.name ? ` (${p.name})` : ''}`).join(', ') || '-';

const conditionText = (
  conditions: NonNullable<ControllerStatus['serviceExports']>[number]['conditions'],
  type: string,
): string => {
  const condition = conditions.find((c) => c.type === type);
  return condition ? `${condition.status} (${condition.reason})` : '-';
};

/** Every local ServiceExport: its conditions, and its record if it was published. */
function renderExports(status: ControllerStatus): string {
  const records = new Map(status.exports.map((e) => [`${e.namespace}/${e.name}`, e]));
  const keys = new Set([
    ...(status.serviceExports ?? []).map((e) => `${e.namespace}/${e.name}`),
    ...records.keys(),
  ]);
  if (keys.size === 0) return '  none';
  const conditions = new Map(
    (status.serviceExports ?? []).map((e) => [`${e.namespace}/${e.name}`, e.conditions]),
  );
  return formatTable(
    ['service', 'valid', 'ready', 'conflict', 'revision', 'published', 'ready endpoints'],
    [...keys].sort().map((key) => {
      const record = records.get(key);
      const own = conditions.get(key) ?? [];
      return [
        key,
        conditionText(own, 'Valid'),
        conditionText(own, 'Ready'),
        conditionText(own, 'Conflict'),
        record ? String(record.revision) : '-',
        !record ? 'no' : record.tombstone ? 'unexported' : record.published ? 'yes' : 'PENDING',
        record && !record.tombstone ? String(record.readyEndpoints) : '-',
      ];
    }),
  );
}

/** `NATS connected`, or why not and for how long (controllers older than the condition: just the flag). */
function natsText(status: ControllerStatus): string {
  const nats = status.nats;
  if (status.natsConnected) return 'NATS connected';
  if (!nats) return 'NATS NOT connected';
  const down = (Date.parse(status.time) - Date.parse(nats.since)) / 1000;
  return `NATS NOT connected (${nats.reason}: ${nats.message}; for ${seconds(Math.max(0, down))})`;
}

/** The readable form of one controller's status. */
export function renderStatus(status: ControllerStatus): string {
  const sections: string[] = [];
  const connected = status.proxies.filter((p) => p.connected);
  const current = connected.filter((p) => p.ackedVersion !== undefined && p.ackedVersion === p.sentVersion);
  sections.push(
    `Cluster ${status.cluster} (trust domain ${status.trustDomain}): ${natsText(status)}, catalog ${status.catalogRunning ? `running${status.mode === 'files' ? ' (file mode)' : ''}` : 'NOT running'}, ${connected.length} proxies connected, ${current.length} on the latest config`,
  );
  sections.push(
    formatTable(
      ['cluster', 'heartbeat age', 'stale', 'sync lag', 'gateways'],
      status.peers.map((peer) => [
        peer.cluster + (peer.cluster === status.cluster ? ' (this)' : ''),
        peer.heartbeatSeen ? seconds(peer.ageSeconds) : 'never',
        peer.stale ? 'STALE' : 'no',
        seconds(peer.syncLagSeconds),
        peer.gatewayAddresses.join(', ') || '-',
      ]),
    ),
  );
  sections.push(`Exports of ${status.cluster}:\n` + renderExports(status));
  // Controllers older than file mode report neither field.
  const problems = status.problems ?? [];
  if (problems.length > 0)
    sections.push(
      `Not read (${problems.length}):\n` +
        formatTable(
          ['file', 'object', 'problem'],
          problems.map((p) => [
            p.file,
            p.kind ? `${p.kind}${p.name ? ` ${p.namespace}/${p.name}` : ''}` : '-',
            p.message,
          ]),
        ),
    );
  sections.push(
    'Clusterset services:\n' +
      (status.services.length === 0
        ? '  none'
        : formatTable(
            ['service', 'type', 'ports', 'clusters', 'conflicts'],
            status.services.map((s) => [
              `${s.namespace}/${s.name}`,
              s.type,
              portsOf(s.ports),
              s.backends
                .map((b) => b.cluster + (b.kind === 'remote' && b.stale ? ' (stale)' : ''))
                .join(', ') + (s.withdrawn.length > 0 ? `; withdrawn: ${s.withdrawn.join(', ')}` : ''),
              s.verdicts
                .filter((v) => v.conflicts.length > 0)
                .map((v) => `${v.cluster}: ${v.conflicts.map((c) => c.reason).join('+')}`)
                .join('; ') || '-',
            ]),
          )),
  );
  const waiting = Object.entries(status.waitingForSigner ?? {});
  if (waiting.length > 0)
    sections.push(
      `Waiting for their cluster's signer: ${waiting.map(([cluster, count]) => `${cluster} ${count}`).join(', ')}`,
    );
  const refused = Object.entries(status.refusals).filter(([, count]) => count > 0);
  if (refused.length > 0)
    sections.push(`Refused from NATS: ${refused.map(([reason, count]) => `${reason} ${count}`).join(', ')}`);
  return `${sections.join('\n\n')}\n`;
}

type PolicyStatus = NonNullable<ControllerStatus['trafficPolicies']>[number];

const isServiceRef = (
  ref: PolicyStatus['ancestors'][number]['ancestorRef'],
  namespace: string,
  name: string,
): boolean =>
  (ref.kind === 'Service' || ref.kind === 'ServiceImport') &&
  ref.namespace === namespace &&
  ref.name === name;

/** The TrafficPolicies that target a Service or ServiceImport of that name. */
function trafficPoliciesOf(status: ControllerStatus, namespace: string, name: string): PolicyStatus[] {
  return (status.trafficPolicies ?? []).filter((policy) =>
    policy.ancestors.some((a) => isServiceRef(a.ancestorRef, namespace, name)),
  );
}

/** An endpoint a sidecar's outlier detection has ejected now (its `/debug/outliers`). */
export interface SidecarEjection {
  readonly sidecar: string;
  readonly service: string;
  readonly cluster: string;
  readonly endpoint: string;
  readonly reason: string;
  readonly ejections: number;
  readonly until: string;
}

/** The endpoints of `namespace/name` the sidecars at `sidecars` (admin URLs) have ejected now. */
export async function fetchEjections(
  sidecars: readonly string[],
  namespace: string,
  name: string,
): Promise<SidecarEjection[]> {
  const lists = await Promise.all(
    sidecars.map(async (sidecar) => {
      let response: Response;
      try {
        response = await fetch(`${sidecar}/debug/outliers`, { signal: AbortSignal.timeout(5_000) });
      } catch (error) {
        const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
        throw new StatusError(`cannot reach the sidecar's admin port at ${sidecar} (${cause})`);
      }
      if (!response.ok)
        throw new StatusError(`${sidecar}/debug/outliers answered ${response.status}: is it a sidecar?`);
      const body = (await response.json()) as { ejected?: Array<Omit<SidecarEjection, 'sidecar'>> };
      return (body.ejected ?? [])
        .filter((e) => e.service.startsWith(`${name}.${namespace}.svc.`))
        .map((e) => ({ sidecar, ...e }));
    }),
  );
  return lists.flat();
}

/** The readable explanation of one service: where it is served from and why. */
export function renderExplain(
  status: ControllerStatus,
  namespace: string,
  name: string,
  /** Set when sidecars were asked (`--sidecar`): what they have ejected now. */
  ejections?: readonly SidecarEjection[],
): string | undefined {
  const service = status.services.find((s) => s.namespace === namespace && s.name === name);
  const own = (status.serviceExports ?? []).find((e) => e.namespace === namespace && e.name === name);
  const ownConditions = own
    ? [
        `ServiceExport ${namespace}/${name} in ${status.cluster}:`,
        formatTable(
          ['condition', 'status', 'reason', 'message'],
          own.conditions.map((c) => [c.type, c.status, c.reason, c.message]),
        ),
      ]
    : [];
  if (!service) {
    if (!own) return undefined;
    return `${[`${namespace}/${name} is not in the clusterset seen from ${status.cluster}.`, '', ...ownConditions].join('\n')}\n`;
  }
  const lines: string[] = [];
  lines.push(`${service.hostname} (${service.type}), seen from cluster ${status.cluster}`);
  lines.push(`ports: ${portsOf(service.ports)}`);
  lines.push('');
  const backendRows = service.backends.map((backend) => {
    if (backend.kind === 'local') {
      const ready = backend.endpoints.filter((e) => e.ready).length;
      return [
        backend.cluster,
        'local endpoints',
        `${ready}/${backend.endpoints.length} ready`,
        'this cluster exports it; proxies here prefer it',
      ];
    }
    return [
      backend.cluster,
      `east-west gateway ${backend.gatewayAddresses.join(', ')}`,
      `${backend.readyEndpoints} ready`,
      backend.stale ? 'STALE: no recent heartbeat; kept (fail static)' : 'exported there; heartbeat current',
    ];
  });
  for (const cluster of service.withdrawn)
    backendRows.push([cluster, '-', '-', 'WITHDRAWN: silent past the TrafficPolicy staleness.withdrawAfter']);
  for (const verdict of service.verdicts.filter((v) => !v.included))
    backendRows.push([
      verdict.cluster,
      '-',
      '-',
      `left out: ${verdict.conflicts.map((c) => `${c.reason} (${c.message})`).join('; ')}`,
    ]);
  lines.push(formatTable(['cluster', 'reached through', 'endpoints', 'why'], backendRows));
  const modes = (status.dataPlaneModes ?? []).filter((m) => m.namespace === namespace && m.name === name);
  if (modes.length > 0) {
    lines.push('');
    lines.push(`How sidecars in ${status.cluster} carry it:`);
    lines.push(
      formatTable(
        ['port', 'mode', 'why'],
        modes.map((m) => [
          String(m.port),
          m.mode,
          m.mode === 'L4'
            ? 'each connection is one HBONE tunnel (no route or request-level policy needs HTTP)'
            : m.reasons.join('; '),
        ]),
      ),
    );
  }
  const policies = trafficPoliciesOf(status, namespace, name);
  if (policies.length > 0) {
    lines.push('');
    lines.push(`TrafficPolicies on it in ${status.cluster}:`);
    lines.push(
      formatTable(
        ['policy', 'target', 'accepted', 'reason', 'message'],
        policies.flatMap((policy) =>
          policy.ancestors
            .filter((a) => isServiceRef(a.ancestorRef, namespace, name))
            .map((a) => {
              const accepted = a.conditions.find((c) => c.type === 'Accepted');
              return [
                `${policy.namespace}/${policy.name}`,
                a.ancestorRef.kind,
                accepted?.status ?? '-',
                accepted?.reason ?? '-',
                accepted?.message ?? '',
              ];
            }),
        ),
      ),
    );
    for (const policy of policies) {
      // In force here: it holds this service (accepted, or refused now with its last valid spec kept).
      const holds = policy.ancestors.some(
        (a) =>
          isServiceRef(a.ancestorRef, namespace, name) &&
          a.conditions.some(
            (c) =>
              c.type === 'Accepted' &&
              (c.reason === 'Accepted' || (c.reason === 'Invalid' && policy.inForce !== undefined)),
          ),
      );
      if (!holds || policy.spec === undefined) continue;
      const { targetRefs: _targets, ...settings } = policy.spec as Record<string, unknown>;
      lines.push(
        `In force from ${policy.namespace}/${policy.name} (generation ${policy.inForce ?? '-'}): ${JSON.stringify(settings)}`,
      );
    }
  }
  if (ejections) {
    lines.push('');
    if (ejections.length === 0)
      lines.push('Endpoints ejected now (outlier detection): none, as the sidecars asked see it');
    else {
      lines.push('Endpoints ejected now (outlier detection), as sidecars see them:');
      lines.push(
        formatTable(
          ['sidecar', 'cluster', 'endpoint', 'why', 'ejections', 'back at'],
          ejections.map((e) => [e.sidecar, e.cluster, e.endpoint, e.reason, String(e.ejections), e.until]),
        ),
      );
    }
  }
  lines.push('');
  lines.push('Conflict conditions of the exports:');
  lines.push(
    formatTable(
      ['cluster', 'conflict', 'reason', 'message'],
      service.verdicts.map((v) => [
        v.cluster,
        v.conflicts.length > 0 ? 'True' : 'False',
        v.conflicts[0]?.reason ?? 'NoConflicts',
        v.conflicts.map((c) => c.message).join('; ') || 'no conflicts with other clusters',
      ]),
    ),
  );
  if (own) lines.push('', ...ownConditions);
  const key = `${namespace}/${name}`;
  const proxies = status.proxies.filter((p) => p.connected);
  const acked = proxies.filter((p) => p.ackedServices.includes(key));
  lines.push('');
  lines.push(`Proxies with it in their acknowledged config: ${acked.length} of ${proxies.length} connected`);
  if (proxies.length > 0)
    lines.push(
      formatTable(
        ['proxy', 'kind', 'identity', 'acked version', 'has it'],
        proxies.map((p) => [
          p.proxy,
          p.kind,
          p.spiffeId,
          p.ackedVersion === undefined ? '-' : String(p.ackedVersion),
          p.ackedServices.includes(key) ? 'yes' : 'no',
        ]),
      ),
    );
  return `${lines.join('\n')}\n`;
}

/** `causeway status` and `causeway explain`. */
export function statusCommands(): Command[] {
  const status = new Command('status')
    .description(
      'the federation as controllers see it: clusters and heartbeat age, exports, clusterset services, conflicts, sync lag, proxies',
    )
    .option(
      '--controller <url>',
      `admin URL of a federation controller; repeat for several clusters (default ${DEFAULT_CONTROLLER})`,
      collect,
    )
    .option('--json', 'print JSON (an array, one object per controller)')
    .action(async (options: { controller?: string[]; json?: boolean }) => {
      const statuses = await Promise.all((options.controller ?? [DEFAULT_CONTROLLER]).map(fetchStatus));
      process.stdout.write(
        options.json ? `${JSON.stringify(statuses)}\n` : statuses.map(renderStatus).join('\n'),
      );
    });
  const explain = new Command('explain')
    .description(
      'which clusters serve a service and why, its conditions, the TrafficPolicies on it, and which proxies have it',
    )
    .argument('<service>', 'the service as <name>.<namespace>')
    .option(
      '--controller <url>',
      `admin URL of the federation controller (default ${DEFAULT_CONTROLLER})`,
      adminUrl,
    )
    .option(
      '--sidecar <url>',
      'admin URL of a sidecar whose ejected endpoints (outlier detection) to show; repeat for several',
      collect,
    )
    .option('--json', 'print the service, its verdicts and the proxies as JSON')
    .action(async (target: string, options: { controller?: string; sidecar?: string[]; json?: boolean }) => {
      const match = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)$/.exec(target);
      if (!match) throw new StatusError(`'${target}' is not <name>.<namespace> (for example: cart.shop)`);
      const [name, namespace] = [match[1]!, match[3]!];
      const status = await fetchStatus(options.controller ?? DEFAULT_CONTROLLER);
      const service = status.services.find((s) => s.namespace === namespace && s.name === name);
      const serviceExport = (status.serviceExports ?? []).find(
        (e) => e.namespace === namespace && e.name === name,
      );
      if (!service && !serviceExport) {
        const known = status.services.map((s) => `${s.name}.${s.namespace}`);
        throw new StatusError(
          `${name}.${namespace} is not in cluster ${status.cluster}'s clusterset catalog` +
            (known.length > 0 ? ` (it has: ${known.join(', ')})` : ' (it is empty)'),
        );
      }
      const ejections = options.sidecar && (await fetchEjections(options.sidecar, namespace, name));
      if (options.json) {
        const key = `${namespace}/${name}`;
        process.stdout.write(
          `${JSON.stringify({
            cluster: status.cluster,
            service: service ?? null,
            serviceExport: serviceExport ?? null,
            dataPlaneModes: (status.dataPlaneModes ?? []).filter(
              (m) => m.namespace === namespace && m.name === name,
            ),
            trafficPolicies: trafficPoliciesOf(status, namespace, name),
            ...(ejections ? { ejectedEndpoints: ejections } : {}),
            proxies: status.proxies.map((p) => ({ ...p, hasService: p.ackedServices.includes(key) })),
          })}\n`,
        );
      } else {
        process.stdout.write(renderExplain(status, namespace, name, ejections)!);
      }
    });
  return [status, explain];
}
