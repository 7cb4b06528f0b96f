import type { IncomingHttpHeaders } from 'node:http';
import {
  hostnameMatches,
  listenerHostnames,
  type CompiledListener,
  type CompiledRoute,
  type ProxyConfig,
} from '@causeway/discovery';
import { compileFilters, type RuleFilters } from './filters.ts';

type Rule = CompiledRoute['rules'][number];
export type Backend = Rule['backends'][number];

/** What matching reads from a request (after path normalization). */
export interface IngressRequest {
  readonly method: string;
  /** The normalized origin-form target, query included. */
  readonly target: string;
  /** The request's host, lower case, without a port. */
  readonly host: string;
  readonly headers: IncomingHttpHeaders;
  readonly grpc: boolean;
}

/** A header or query parameter condition, compiled. */
interface ValueCondition {
  readonly name: string;
  readonly exact?: string;
  readonly regex?: RegExp;
}

/** One match of one rule, with its place in the precedence order of its host. */
export interface RouteEntry {
  /** Lower wins among the entries that match a request. */
  order: number;
  readonly kind: 'HTTPRoute' | 'GRPCRoute';
  /** `<namespace>/<name>#<rule name or index>`: the route label of metrics and logs. */
  readonly label: string;
  readonly route: CompiledRoute;
  readonly ruleIndex: number;
  readonly matchIndex: number;
  /** HTTPRoute: the path condition. */
  readonly path?: {
    readonly type: 'Exact' | 'PathPrefix' | 'RegularExpression';
    readonly value: string;
    readonly regex?: RegExp;
  };
  /** GRPCRoute: the method condition. */
  readonly grpcMethod?: {
    readonly service?: string;
    readonly method?: string;
    readonly serviceRegex?: RegExp;
    readonly methodRegex?: RegExp;
  };
  readonly method?: string;
  readonly headers: readonly ValueCondition[];
  readonly query: readonly ValueCondition[];
  readonly filters: RuleFilters;
  readonly backends: readonly Backend[];
  readonly timeouts?: { readonly request?: string; readonly backendRequest?: string };
  /** A condition that cannot be compiled (a bad regular expression): never matches. */
  readonly broken?: string;
}

/** The entries of one hostname (exact, wildcard or any), indexed by what a request names first. */
class HostBucket {
  readonly entries: RouteEntry[] = [];
  /** HTTPRoute Exact paths. */
  private readonly exact = new Map<string, RouteEntry[]>();
  /** HTTPRoute path prefixes without their trailing slash (`""` for `/`). */
  private readonly prefix = new Map<string, RouteEntry[]>();
  /** HTTPRoute regular expressions, and GRPCRoute matches that are not an exact service. */
  private readonly scanned: RouteEntry[] = [];
  /** GRPCRoute exact service names. */
  private readonly grpcService = new Map<string, RouteEntry[]>();
  private longestPrefix = 0;

  /** Orders the entries (Gateway API precedence) and builds the indexes. */
  seal(): void {
    this.entries.sort(compareEntries);
    this.entries.forEach((entry, index) => (entry.order = index));
    const add = (map: Map<string, RouteEntry[]>, key: string, entry: RouteEntry) => {
      const list = map.get(key);
      if (list) list.push(entry);
      else map.set(key, [entry]);
    };
    for (const entry of this.entries) {
      if (entry.broken) continue;
      if (entry.kind === 'GRPCRoute') {
        const method = entry.grpcMethod;
        if (method?.service !== undefined && !method.serviceRegex)
          add(this.grpcService, method.service, entry);
        else this.scanned.push(entry);
      } else if (entry.path!.type === 'Exact') add(this.exact, entry.path!.value, entry);
      else if (entry.path!.type === 'PathPrefix') {
        const prefix = entry.path!.value.replace(/\/+$/, '');
        this.longestPrefix = Math.max(this.longestPrefix, prefix.length);
        add(this.prefix, prefix, entry);
      } else this.scanned.push(entry);
    }
  }

  /** The matching entry that comes first, if any. */
  find(
    request: IngressRequest,
    path: string,
    query: URLSearchParams | undefined,
    grpcCall?: GrpcCall,
  ): RouteEntry | undefined {
    let best: RouteEntry | undefined;
    const consider = (list: readonly RouteEntry[] | undefined) => {
      if (!list) return;
      for (const entry of list) {
        if (best && entry.order >= best.order) return;
        if (entryMatches(entry, request, path, query, grpcCall)) {
          best = entry;
          return;
        }
      }
    };
    if (grpcCall) {
      consider(this.grpcService.get(grpcCall.service));
      for (const entry of this.scanned)
        if (
          entry.kind === 'GRPCRoute' &&
          (!best || entry.order < best.order) &&
          entryMatches(entry, request, path, query, grpcCall)
        )
          best = entry;
      if (best) return best;
    }
    consider(this.exact.get(path));
    for (const entry of this.scanned)
      if (
        entry.kind === 'HTTPRoute' &&
        (!best || entry.order < best.order) &&
        entryMatches(entry, request, path, query)
      )
        best = entry;
    // Every prefix of the path at a segment boundary, longest first (none longer than the
    // longest prefix there is: a path of many segments costs no more than a short one).
    if (!path.endsWith('/') && path.length <= this.longestPrefix) consider(this.prefix.get(path));
    for (let index = Math.min(path.length, this.longestPrefix + 1) - 1; index > 0; index--)
      if (path.charCodeAt(index) === 47) consider(this.prefix.get(path.slice(0, index)));
    consider(this.prefix.get(''));
    return best;
  }
}

interface GrpcCall {
  readonly service: string;
  readonly method: string;
}

const PATH_RANK = { Exact: 0, RegularExpression: 1, PathPrefix: 2 } as const;

/** Gateway API precedence (HTTPRouteRule and GRPCRouteRule), then age, name and order. */
function compareEntries(a: RouteEntry, b: RouteEntry): number {
  if (a.kind !== b.kind) return a.kind === 'GRPCRoute' ? -1 : 1;
  if (a.kind === 'HTTPRoute') {
    const pa = a.path!;
    const pb = b.path!;
    if (pa.type !== pb.type) return PATH_RANK[pa.type] - PATH_RANK[pb.type];
    if (pa.value.length !== pb.value.length) return pb.value.length - pa.value.length;
    if (!!a.method !== !!b.method) return a.method ? -1 : 1;
  } else {
    const sa = a.grpcMethod?.service?.length ?? 0;
    const sb = b.grpcMethod?.service?.length ?? 0;
    if (sa !== sb) return sb - sa;
    const ma = a.grpcMethod?.method?.length ?? 0;
    const mb = b.grpcMethod?.method?.length ?? 0;
    if (ma !== mb) return mb - ma;
  }
  if (a.headers.length !== b.headers.length) return b.headers.length - a.headers.length;
  if (a.query.length !== b.query.length) return b.query.length - a.query.length;
  const ca = a.route.created ?? '';
  const cb = b.route.created ?? '';
  if (ca !== cb) return ca < cb ? -1 : 1;
  const na = `${a.route.namespace}/${a.route.name}`;
  const nb = `${b.route.namespace}/${b.route.name}`;
  if (na !== nb) return na < nb ? -1 : 1;
  return a.ruleIndex - b.ruleIndex || a.matchIndex - b.matchIndex;
}

function valueMatches(condition: ValueCondition, value: string | undefined): boolean {
  if (value === undefined) return false;
  return condition.regex ? condition.regex.test(value) : value === condition.exact;
}

function headerText(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

function entryMatches(
  entry: RouteEntry,
  request: IngressRequest,
  path: string,
  query: URLSearchParams | undefined,
  grpcCall?: GrpcCall,
): boolean {
  if (entry.kind === 'GRPCRoute') {
    if (!grpcCall) return false;
    const m = entry.grpcMethod;
    if (m) {
      if (
        m.serviceRegex
          ? !m.serviceRegex.test(grpcCall.service)
          : m.service !== undefined && m.service !== grpcCall.service
      )
        return false;
      if (
        m.methodRegex
          ? !m.methodRegex.test(grpcCall.method)
          : m.method !== undefined && m.method !== grpcCall.method
      )
        return false;
    }
  } else {
    const want = entry.path!;
    if (want.type === 'Exact') {
      if (path !== want.value) return false;
    } else if (want.type === 'RegularExpression') {
      if (!want.regex!.test(path)) return false;
    } else {
      const prefix = want.value.replace(/\/+$/, '');
      if (prefix !== '' && path !== prefix && !path.startsWith(`${prefix}/`)) return false;
    }
    if (entry.method && entry.method !== request.method) return false;
  }
  for (const header of entry.headers)
    if (!valueMatches(header, headerText(request.headers, header.name))) return false;
  for (const param of entry.query)
    if (!valueMatches(param, query?.get(param.name) ?? undefined)) return false;
  return true;
}

/** A full-match regular expression, or the reason it cannot be one. */
function fullMatch(source: string): RegExp | string {
  try {
    return new RegExp(`^(?:${source})$`);
  } catch (error) {
    return `invalid regular expression ${JSON.stringify(source)}: ${(error as Error).message}`;
  }
}

interface RawValueMatch {
  type?: string;
  name: string;
  value: string;
}

function valueConditions(
  raw: readonly RawValueMatch[] | undefined,
  lowerNames: boolean,
  broken: string[],
): ValueCondition[] {
  const seen = new Set<string>();
  const out: ValueCondition[] = [];
  for (const match of raw ?? []) {
    const name = lowerNames ? match.name.toLowerCase() : match.name;
    // Only the first condition on a name counts (Gateway API).
    if (seen.has(name)) continue;
    seen.add(name);
    if (match.type === 'RegularExpression') {
      const regex = fullMatch(match.value);
      if (typeof regex === 'string') broken.push(regex);
      else out.push({ name, regex });
    } else out.push({ name, exact: match.value });
  }
  return out;
}

interface RawHttpMatch {
  path?: { type?: string; value?: string };
  method?: string;
  headers?: RawValueMatch[];
  queryParams?: RawValueMatch[];
}
interface RawGrpcMatch {
  method?: { type?: string; service?: string; method?: string };
  headers?: RawValueMatch[];
}

/** The entries of one rule: one per match (a rule without matches matches everything). */
function ruleEntries(route: CompiledRoute, rule: Rule, ruleIndex: number): RouteEntry[] {
  const label = `${route.namespace}/${route.name}#${rule.name ?? ruleIndex}`;
  const filters = compileFilters(rule.filters);
  const timeouts = rule.timeouts as RouteEntry['timeouts'];
  const common = {
    label,
    route,
    ruleIndex,
    filters,
    backends: rule.backends,
    ...(timeouts ? { timeouts } : {}),
  };
  const matches = rule.matches.length > 0 ? rule.matches : [{}];
  return matches.map((raw, matchIndex) => {
    const broken: string[] = [];
    if (route.kind === 'GRPCRoute') {
      const match = raw as RawGrpcMatch;
      const m = match.method;
      let grpcMethod: RouteEntry['grpcMethod'];
      if (m) {
        if (m.type === 'RegularExpression') {
          const serviceRegex = m.service !== undefined ? fullMatch(m.service) : undefined;
          const methodRegex = m.method !== undefined ? fullMatch(m.method) : undefined;
          for (const r of [serviceRegex, methodRegex]) if (typeof r === 'string') broken.push(r);
          grpcMethod = {
            ...(m.service !== undefined ? { service: m.service } : {}),
            ...(m.method !== undefined ? { method: m.method } : {}),
            ...(serviceRegex instanceof RegExp ? { serviceRegex } : {}),
            ...(methodRegex instanceof RegExp ? { methodRegex } : {}),
          };
        } else
          grpcMethod = {
            ...(m.service !== undefined ? { service: m.service } : {}),
            ...(m.method !== undefined ? { method: m.method } : {}),
          };
      }
      const headers = valueConditions(match.headers, true, broken);
      return {
        order: 0,
        kind: 'GRPCRoute',
        ...common,
        matchIndex,
        ...(grpcMethod ? { grpcMethod } : {}),
        headers,
        query: [],
        ...(broken.length ? { broken: broken.join('; ') } : {}),
      };
    }
    const match = raw as RawHttpMatch;
    const type = (match.path?.type ?? 'PathPrefix') as 'Exact' | 'PathPrefix' | 'RegularExpression';
    const value = match.path?.value ?? '/';
    let regex: RegExp | undefined;
    if (type === 'RegularExpression') {
      const compiled = fullMatch(value);
      if (typeof compiled === 'string') broken.push(compiled);
      else regex = compiled;
    }
    const headers = valueConditions(match.headers, true, broken);
    const query = valueConditions(match.queryParams, false, broken);
    return {
      order: 0,
      kind: 'HTTPRoute',
      ...common,
      matchIndex,
      path: { type, value, ...(regex ? { regex } : {}) },
      ...(match.method ? { method: match.method } : {}),
      headers,
      query,
      ...(broken.length ? { broken: broken.join('; ') } : {}),
    };
  });
}

/** The routes of one listener, by hostname. */
class ListenerRoutes {
  private readonly exact = new Map<string, HostBucket>();
  /** Wildcards by their suffix (`.example.com`), longest first when looked up. */
  private readonly wildcard = new Map<string, HostBucket>();
  private any: HostBucket | undefined;

  constructor(readonly listener: CompiledListener & { readonly gateway: string }) {}

  add(hostname: string, entries: readonly RouteEntry[]): void {
    let bucket: HostBucket | undefined;
    if (hostname === '*') bucket = this.any ??= new HostBucket();
    else {
      const map = hostname.startsWith('*.') ? this.wildcard : this.exact;
      const key = hostname.startsWith('*.') ? hostname.slice(1) : hostname;
      bucket = map.get(key);
      if (!bucket) map.set(key, (bucket = new HostBucket()));
    }
    // Each bucket gets its own copies: an entry's order is its place in that bucket.
    for (const entry of entries) bucket.entries.push({ ...entry });
  }

  seal(): void {
    for (const bucket of this.exact.values()) bucket.seal();
    for (const bucket of this.wildcard.values()) bucket.seal();
    this.any?.seal();
  }

  /** Exact hostname first, then wildcards from the most specific, then routes for any host. */
  find(
    request: IngressRequest,
    path: string,
    query: URLSearchParams | undefined,
    grpcCall?: GrpcCall,
  ): RouteEntry | undefined {
    const host = request.host;
    const exact = this.exact.get(host)?.find(request, path, query, grpcCall);
    if (exact) return exact;
    if (this.wildcard.size > 0)
      for (let index = host.indexOf('.'); index > 0; index = host.indexOf('.', index + 1)) {
        const found = this.wildcard.get(host.slice(index))?.find(request, path, query, grpcCall);
        if (found) return found;
      }
    return this.any?.find(request, path, query, grpcCall);
  }
}

/** The outcome of matching a request on one port. */
export type RouteDecision =
  | { readonly type: 'matched'; readonly entry: RouteEntry; readonly listener: ListenerRoutes['listener'] }
  | { readonly type: 'no-listener' }
  | { readonly type: 'no-route'; readonly listener: ListenerRoutes['listener'] };

/**
 * Every route of the Gateways an ingress gateway serves, compiled once per config: per
 * listener port, the listeners by hostname, and per listener hostname the rules in
 * Gateway API precedence, indexed by exact path, path prefix and gRPC service, so that
 * matching a request looks at a few candidates however many routes there are.
 */
export class RouteTable {
  private readonly ports = new Map<number, ListenerRoutes[]>();

  private constructor() {}

  /**
   * Compiles the config's Gateways (all of them, or those `served` names as
   * `<namespace>/<name>`) and the routes attached to their listeners.
   */
  static compile(
    config: ProxyConfig,
    served?: ReadonlySet<string>,
    onError?: (message: string) => void,
  ): RouteTable {
    const table = new RouteTable();
    const listeners = new Map<string, ListenerRoutes>();
    for (const gateway of config.gateways) {
      const id = `${gateway.namespace}/${gateway.name}`;
      if (served && !served.has(id)) continue;
      for (const listener of gateway.listeners) {
        const routes = new ListenerRoutes({ ...listener, gateway: id });
        listeners.set(`${id}/${listener.name}`, routes);
        const list = table.ports.get(listener.port);
        if (list) list.push(routes);
        else table.ports.set(listener.port, [routes]);
      }
    }
    for (const route of config.routes) {
      let entries: RouteEntry[] | undefined;
      for (const parent of route.parents) {
        if (parent.kind !== 'Gateway') continue;
        for (const name of parent.listeners ?? []) {
          const routes = listeners.get(`${parent.namespace}/${parent.name}/${name}`);
          if (!routes) continue;
          try {
            entries ??= route.rules.flatMap((rule, index) => ruleEntries(route, rule, index));
          } catch (error) {
            // A rule the schema let through but that cannot be compiled: the route is left out.
            onError?.(`route ${route.namespace}/${route.name} cannot be compiled: ${String(error)}`);
            entries = [];
          }
          for (const hostname of listenerHostnames(routes.listener.hostname, route.hostnames))
            routes.add(hostname, entries);
        }
      }
    }
    for (const routes of listeners.values()) routes.seal();
    // The most specific listener hostname first: exact, then longer wildcards, then none.
    for (const list of table.ports.values())
      list.sort((a, b) => listenerRank(a.listener.hostname) - listenerRank(b.listener.hostname));
    return table;
  }

  /** The Gateway listener ports to serve. */
  listenerPorts(): Array<{ readonly port: number; readonly tls: boolean }> {
    return [...this.ports.entries()]
      .map(([port, listeners]) => ({ port, tls: listeners.some((l) => l.listener.protocol === 'HTTPS') }))
      .sort((a, b) => a.port - b.port);
  }

  /** The listener on `port` whose hostname matches `host` most specifically. */
  listenerFor(port: number, host: string): ListenerRoutes['listener'] | undefined {
    return this.routesFor(port, host)?.listener;
  }

  private routesFor(port: number, host: string): ListenerRoutes | undefined {
    return this.ports
      .get(port)
      ?.find((l) => !l.listener.hostname || hostnameMatches(l.listener.hostname, host));
  }

  /** The listener a request for `host` on `port` belongs to, and the rule it matches. */
  match(port: number, request: IngressRequest): RouteDecision {
    const listener = this.routesFor(port, request.host);
    if (!listener) return { type: 'no-listener' };
    const queryStart = request.target.indexOf('?');
    const path = queryStart < 0 ? request.target : request.target.slice(0, queryStart);
    const query = queryStart < 0 ? undefined : new URLSearchParams(request.target.slice(queryStart + 1));
    let grpcCall: GrpcCall | undefined;
    if (request.grpc) {
      const parts = /^\/([^/]+)\/([^/]+)$/.exec(path);
      if (parts) grpcCall = { service: parts[1]!, method: parts[2]! };
    }
    const entry = listener.find(request, path, query, grpcCall);
    return entry
      ? { type: 'matched', entry, listener: listener.listener }
      : { type: 'no-route', listener: listener.listener };
  }
}

function listenerRank(hostname: string | undefined): number {
  if (!hostname) return Number.MAX_SAFE_INTEGER;
  // Exact names before every wildcard; longer wildcards before shorter ones.
  return hostname.startsWith('*.') ? 1_000_000 - hostname.length : 0;
}
