import type { ConditionValue } from '@causeway/catalog';

/** The `gatewayClassName` of the Gateways Causeway's ingress gateways serve. */
export const GATEWAY_CLASS = 'causeway';

const GATEWAY_GROUP = 'gateway.networking.k8s.io';

/** The route kinds a listener can take. */
export type ListenerRouteKind = 'HTTPRoute' | 'GRPCRoute';

/** The fields of a Gateway that are compiled. */
export interface GatewayView {
  readonly metadata: { readonly namespace: string; readonly name: string; readonly generation?: number };
  readonly spec?: {
    readonly gatewayClassName?: string;
    readonly listeners?: ReadonlyArray<{
      readonly name: string;
      readonly hostname?: string;
      readonly port: number;
      readonly protocol: string;
      readonly tls?: unknown;
      readonly allowedRoutes?: {
        readonly namespaces?: { readonly from?: string };
        readonly kinds?: ReadonlyArray<{ readonly group?: string; readonly kind: string }>;
      };
    }>;
  };
}

/** One listener an ingress gateway serves. */
export interface CompiledListener {
  readonly name: string;
  readonly port: number;
  readonly protocol: 'HTTP';
  /** Requests for other hosts are not this listener's (none: any host). */
  readonly hostname?: string;
  readonly kinds: readonly ListenerRouteKind[];
  /** Which namespaces' routes may attach. */
  readonly namespaces: 'Same' | 'All';
}

/** A Gateway of Causeway's class, with the listeners that were accepted. */
export interface CompiledGateway {
  readonly namespace: string;
  readonly name: string;
  readonly listeners: readonly CompiledListener[];
}

/** What Causeway writes to a Gateway's status (`attachedRoutes` counted after the routes). */
export interface GatewayStatus {
  readonly conditions: readonly ConditionValue[];
  readonly listeners: ReadonlyArray<{
    readonly name: string;
    readonly supportedKinds: ReadonlyArray<{ readonly group: string; readonly kind: string }>;
    readonly attachedRoutes: number;
    readonly conditions: readonly ConditionValue[];
  }>;
}

const condition = (type: string, ok: boolean, reason: string, message: string): ConditionValue => ({
  type,
  status: ok ? 'True' : 'False',
  reason,
  message,
});

/**
 * Compiles the Gateways of class `causeway` (others are left alone, status included):
 * each listener is accepted when its protocol is one Causeway serves and its route kinds
 * are ones it knows, and is in conflict when another listener on the same port has the
 * same hostname. The Gateway is `Accepted` and `Programmed` while at least one listener is.
 */
export function compileGateways(gateways: readonly GatewayView[]): {
  gateways: CompiledGateway[];
  statuses: Map<string, GatewayStatus>;
} {
  const compiled: CompiledGateway[] = [];
  const statuses = new Map<string, GatewayStatus>();
  for (const gateway of gateways) {
    if (gateway.spec?.gatewayClassName !== GATEWAY_CLASS) continue;
    const listeners = gateway.spec.listeners ?? [];
    const accepted: CompiledListener[] = [];
    const listenerStatuses: Array<GatewayStatus['listeners'][number]> = [];
    for (const listener of listeners) {
      const conditions: ConditionValue[] = [];
      const protocol = listener.protocol;
      const requested = listener.allowedRoutes?.kinds;
      const known = (requested ?? [{ kind: 'HTTPRoute' }, { kind: 'GRPCRoute' }]).filter(
        (k) =>
          (k.group ?? GATEWAY_GROUP) === GATEWAY_GROUP && (k.kind === 'HTTPRoute' || k.kind === 'GRPCRoute'),
      );
      const kinds = [...new Set(known.map((k) => k.kind as ListenerRouteKind))];
      const sameHost = listeners.filter(
        (other) =>
          other !== listener &&
          other.port === listener.port &&
          (other.hostname ?? '') === (listener.hostname ?? ''),
      );
      const otherProtocol = listeners.some(
        (other) => other !== listener && other.port === listener.port && other.protocol !== protocol,
      );
      const from = listener.allowedRoutes?.namespaces?.from ?? 'Same';
      let ok = true;
      if (protocol !== 'HTTP') {
        ok = false;
        conditions.push(
          condition(
            'Accepted',
            false,
            'UnsupportedProtocol',
            protocol === 'HTTPS'
              ? 'HTTPS listeners are not served by this version of the ingress gateway'
              : `protocol ${protocol} is not served; HTTP is`,
          ),
        );
      } else if (from === 'Selector') {
        ok = false;
        conditions.push(
          condition(
            'Accepted',
            false,
            'UnsupportedValue',
            'allowedRoutes.namespaces.from: Selector is not supported; use Same or All',
          ),
        );
      } else {
        conditions.push(condition('Accepted', true, 'Accepted', 'listener accepted'));
      }
      const refsOk = requested === undefined || known.length === requested.length;
      conditions.push(
        refsOk
          ? condition('ResolvedRefs', true, 'ResolvedRefs', 'all references resolved')
          : condition(
              'ResolvedRefs',
              false,
              'InvalidRouteKinds',
              `allowedRoutes.kinds names kinds other than HTTPRoute and GRPCRoute: ${requested
                .filter((k) => !known.includes(k))
                .map((k) => `${k.group ?? GATEWAY_GROUP}/${k.kind}`)
                .join(', ')}`,
            ),
      );
      const conflicted = sameHost.length > 0 || otherProtocol;
      conditions.push(
        conflicted
          ? condition(
              'Conflicted',
              true,
              otherProtocol ? 'ProtocolConflict' : 'HostnameConflict',
              otherProtocol
                ? `another listener on port ${listener.port} has another protocol`
                : `listener ${sameHost[0]!.name} has the same port and hostname`,
            )
          : condition('Conflicted', false, 'NoConflicts', 'no conflicts'),
      );
      const serving = ok && !conflicted && kinds.length > 0;
      conditions.push(
        serving
          ? condition('Programmed', true, 'Programmed', 'served by the ingress gateway')
          : condition(
              'Programmed',
              false,
              'Invalid',
              'the listener is not served (see the other conditions)',
            ),
      );
      listenerStatuses.push({
        name: listener.name,
        supportedKinds: kinds.map((kind) => ({ group: GATEWAY_GROUP, kind })),
        attachedRoutes: 0,
        conditions,
      });
      if (serving)
        accepted.push({
          name: listener.name,
          port: listener.port,
          protocol: 'HTTP',
          ...(listener.hostname ? { hostname: listener.hostname.toLowerCase() } : {}),
          kinds,
          namespaces: from === 'All' ? 'All' : 'Same',
        });
    }
    const serving = accepted.length > 0;
    statuses.set(`${gateway.metadata.namespace}/${gateway.metadata.name}`, {
      conditions: [
        condition('Accepted', true, 'Accepted', `accepted by the ${GATEWAY_CLASS} gateway class`),
        serving
          ? condition(
              'Programmed',
              true,
              'Programmed',
              `${accepted.length} of ${listeners.length} listeners served`,
            )
          : condition('Programmed', false, 'Invalid', 'no listener can be served'),
      ],
      listeners: listenerStatuses,
    });
    compiled.push({
      namespace: gateway.metadata.namespace,
      name: gateway.metadata.name,
      listeners: accepted,
    });
  }
  compiled.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
  return { gateways: compiled, statuses };
}

/** Whether a hostname (never a wildcard) falls under `pattern` (`*.example.com`, or exact). */
export function hostnameMatches(pattern: string, hostname: string): boolean {
  if (!pattern.startsWith('*.')) return pattern === hostname;
  // A wildcard stands for one label or more, never for none.
  return hostname.endsWith(pattern.slice(1)) && hostname.length > pattern.length - 1;
}

/**
 * The hostnames a route serves on a listener: the Gateway API intersection of the route's
 * hostnames with the listener's (none on either side: any host, written as `*`). Empty:
 * they do not intersect, and the route does not attach to the listener.
 */
export function listenerHostnames(listener: string | undefined, route: readonly string[]): string[] {
  const routeHosts = route.map((h) => h.toLowerCase());
  if (routeHosts.length === 0) return [listener ?? '*'];
  if (!listener) return routeHosts;
  const out = new Set<string>();
  for (const host of routeHosts) {
    if (!host.startsWith('*.')) {
      if (hostnameMatches(listener, host)) out.add(host);
    } else if (!listener.startsWith('*.')) {
      if (hostnameMatches(host, listener)) out.add(listener);
    } else if (listener.endsWith(host.slice(1))) out.add(listener);
    else if (host.endsWith(listener.slice(1))) out.add(host);
  }
  return [...out];
}

/**
 * Which listeners of a Gateway a route attaches to, by the parentRef's `sectionName` and
 * `port`, the listeners' allowed kinds and namespaces, and the hostnames; or, when none,
 * the `Accepted=False` condition that says why.
 */
export function attachRoute(
  gateway: CompiledGateway,
  ref: { readonly sectionName?: string; readonly port?: number },
  route: {
    readonly kind: ListenerRouteKind;
    readonly namespace: string;
    readonly hostnames: readonly string[];
  },
): { readonly listeners: string[] } | { readonly refusal: ConditionValue } {
  const named = gateway.listeners.filter(
    (l) =>
      (ref.sectionName === undefined || l.name === ref.sectionName) &&
      (ref.port === undefined || l.port === ref.port),
  );
  if (named.length === 0)
    return {
      refusal: condition(
        'Accepted',
        false,
        'NoMatchingParent',
        ref.sectionName !== undefined
          ? `Gateway ${gateway.namespace}/${gateway.name} serves no listener ${ref.sectionName}${ref.port !== undefined ? ` on port ${ref.port}` : ''}`
          : `Gateway ${gateway.namespace}/${gateway.name} serves no listener on port ${ref.port}`,
      ),
    };
  const allowed = named.filter(
    (l) => l.kinds.includes(route.kind) && (l.namespaces === 'All' || route.namespace === gateway.namespace),
  );
  if (allowed.length === 0)
    return {
      refusal: condition(
        'Accepted',
        false,
        'NotAllowedByListeners',
        `no listener of Gateway ${gateway.namespace}/${gateway.name} allows ${route.kind}s from namespace ${route.namespace}`,
      ),
    };
  const matching = allowed.filter((l) => listenerHostnames(l.hostname, route.hostnames).length > 0);
  if (matching.length === 0)
    return {
      refusal: condition(
        'Accepted',
        false,
        'NoMatchingListenerHostname',
        `no hostname of the route matches a listener of Gateway ${gateway.namespace}/${gateway.name}`,
      ),
    };
  return { listeners: matching.map((l) => l.name) };
}
