import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { ConditionValue } from '@causeway/catalog';
import { referencePermitted, type ReferenceGrantView } from './routes.ts';

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
  readonly protocol: 'HTTP' | 'HTTPS';
  /** HTTPS: the certificate chains and keys (PEM) of `tls.certificateRefs` that resolved. */
  readonly certificates?: ReadonlyArray<{ readonly certificate: string; readonly privateKey: string }>;
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
export function compileGateways(
  gateways: readonly GatewayView[],
  /** A TLS Secret by namespace and name (HTTPS listeners' `certificateRefs`). */
  secret: (namespace: string, name: string) => SecretView | undefined = () => undefined,
  grants: readonly ReferenceGrantView[] = [],
): {
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
      const tls = listener.tls as
        | {
            mode?: string;
            certificateRefs?: Array<{ group?: string; kind?: string; namespace?: string; name: string }>;
          }
        | undefined;
      let certificates: Array<{ certificate: string; privateKey: string }> = [];
      let certificateProblem: ConditionValue | undefined;
      if (protocol === 'HTTPS') {
        const resolved = resolveCertificates(gateway.metadata.namespace, tls, secret, grants);
        certificates = resolved.certificates;
        certificateProblem = resolved.problem;
      }
      if (protocol !== 'HTTP' && protocol !== 'HTTPS') {
        ok = false;
        conditions.push(
          condition(
            'Accepted',
            false,
            'UnsupportedProtocol',
            `protocol ${protocol} is not served; HTTP and HTTPS are`,
          ),
        );
      } else if (protocol === 'HTTPS' && (tls?.mode ?? 'Terminate') !== 'Terminate') {
        ok = false;
        conditions.push(
          condition(
            'Accepted',
            false,
            'UnsupportedValue',
            'tls.mode Passthrough is not served; HTTPS listeners terminate TLS',
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
        certificateProblem && refsOk
          ? certificateProblem
          : refsOk
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
      // An HTTPS listener is served with the certificates that resolved (at least one).
      const serving =
        ok && !conflicted && kinds.length > 0 && (protocol === 'HTTP' || certificates.length > 0);
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
          protocol: protocol as 'HTTP' | 'HTTPS',
          ...(protocol === 'HTTPS' ? { certificates } : {}),
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

/** The fields of a TLS Secret that are read. */
export interface SecretView {
  readonly type?: string;
  readonly data?: Readonly<Record<string, string>>;
  readonly stringData?: Readonly<Record<string, string>>;
}

/**
 * The certificates of an HTTPS listener: each `certificateRefs` entry must be a Secret of
 * type `kubernetes.io/tls` in the Gateway's namespace (or one a ReferenceGrant there lets
 * Gateways from it use), with a certificate chain and a private key that parse and belong
 * together. The first problem found is the listener's `ResolvedRefs` condition.
 */
function resolveCertificates(
  namespace: string,
  tls:
    | { certificateRefs?: Array<{ group?: string; kind?: string; namespace?: string; name: string }> }
    | undefined,
  secret: (namespace: string, name: string) => SecretView | undefined,
  grants: readonly ReferenceGrantView[],
): { certificates: Array<{ certificate: string; privateKey: string }>; problem?: ConditionValue } {
  const certificates: Array<{ certificate: string; privateKey: string }> = [];
  let problem: ConditionValue | undefined;
  const refuse = (reason: string, message: string) =>
    (problem ??= condition('ResolvedRefs', false, reason, message));
  const refs = tls?.certificateRefs ?? [];
  if (refs.length === 0) refuse('InvalidCertificateRef', 'an HTTPS listener needs tls.certificateRefs');
  for (const ref of refs) {
    const target = ref.namespace ?? namespace;
    const where = `Secret ${target}/${ref.name}`;
    if ((ref.group ?? '') !== '' || (ref.kind ?? 'Secret') !== 'Secret') {
      refuse(
        'InvalidCertificateRef',
        `certificateRef ${ref.group ?? ''}/${ref.kind} ${ref.name} is not a Secret`,
      );
      continue;
    }
    if (
      target !== namespace &&
      !referencePermitted(
        grants,
        { kind: 'Gateway', namespace },
        { group: '', kind: 'Secret', namespace: target, name: ref.name },
      )
    ) {
      refuse(
        'RefNotPermitted',
        `${where} is in another namespace and no ReferenceGrant there allows Gateways from ${namespace}`,
      );
      continue;
    }
    const found = secret(target, ref.name);
    if (!found || found.type !== 'kubernetes.io/tls') {
      refuse('InvalidCertificateRef', `${where} does not exist or is not of type kubernetes.io/tls`);
      continue;
    }
    const field = (key: string) =>
      found.stringData?.[key] ??
      (found.data?.[key] !== undefined
        ? Buffer.from(found.data[key]!, 'base64').toString('utf8')
        : undefined);
    const certificate = field('tls.crt');
    const privateKey = field('tls.key');
    try {
      if (!certificate || !privateKey) throw new Error('tls.crt and tls.key are both needed');
      const leaf = new X509Certificate(certificate);
      if (!leaf.checkPrivateKey(createPrivateKey(privateKey)))
        throw new Error('tls.key is not the key of tls.crt');
      // The whole chain as the gateway's TLS server will load it.
      createSecureContext({ cert: certificate, key: privateKey });
      certificates.push({ certificate, privateKey });
    } catch (error) {
      refuse('InvalidCertificateRef', `${where}: ${(error as Error).message}`);
    }
  }
  return { certificates, ...(problem ? { problem } : {}) };
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
