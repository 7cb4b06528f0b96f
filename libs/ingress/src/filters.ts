/** Header changes of a RequestHeaderModifier or ResponseHeaderModifier filter (names in lower case). */
export interface HeaderEdit {
  readonly set: ReadonlyArray<readonly [string, string]>;
  readonly add: ReadonlyArray<readonly [string, string]>;
  readonly remove: readonly string[];
}

/** A path change (RequestRedirect `path`, URLRewrite `path`). */
export type PathChange =
  | { readonly type: 'ReplaceFullPath'; readonly value: string }
  | { readonly type: 'ReplacePrefixMatch'; readonly value: string };

export interface Redirect {
  readonly scheme?: string;
  readonly hostname?: string;
  readonly port?: number;
  readonly path?: PathChange;
  readonly statusCode: number;
}

export interface Rewrite {
  readonly hostname?: string;
  readonly path?: PathChange;
}

/** A RequestMirror filter's backend. */
export interface Mirror {
  readonly kind: 'Service' | 'ServiceImport';
  readonly namespace?: string;
  readonly name: string;
  readonly port?: number;
  /** Share of requests mirrored, 0 to 1. */
  readonly fraction: number;
}

/** A rule's filters, compiled once per config. */
export interface RuleFilters {
  readonly requestHeaders?: HeaderEdit;
  readonly responseHeaders?: HeaderEdit;
  readonly redirect?: Redirect;
  readonly rewrite?: Rewrite;
  readonly mirrors: readonly Mirror[];
}

interface RawHeaderModifier {
  set?: Array<{ name: string; value: string }>;
  add?: Array<{ name: string; value: string }>;
  remove?: string[];
}
interface RawPath {
  type?: string;
  replaceFullPath?: string;
  replacePrefixMatch?: string;
}
interface RawFilter {
  type?: string;
  requestHeaderModifier?: RawHeaderModifier;
  responseHeaderModifier?: RawHeaderModifier;
  requestRedirect?: {
    scheme?: string;
    hostname?: string;
    port?: number;
    path?: RawPath;
    statusCode?: number;
  };
  urlRewrite?: { hostname?: string; path?: RawPath };
  requestMirror?: {
    backendRef?: { group?: string; kind?: string; namespace?: string; name: string; port?: number };
    percent?: number;
    fraction?: { numerator: number; denominator?: number };
  };
}

function headerEdit(raw: RawHeaderModifier | undefined): HeaderEdit | undefined {
  if (!raw) return undefined;
  const pairs = (list: RawHeaderModifier['set']) =>
    (list ?? []).map((h) => [h.name.toLowerCase(), h.value] as const);
  return { set: pairs(raw.set), add: pairs(raw.add), remove: (raw.remove ?? []).map((n) => n.toLowerCase()) };
}

function pathChange(raw: RawPath | undefined): PathChange | undefined {
  if (raw?.type === 'ReplaceFullPath' && raw.replaceFullPath !== undefined)
    return { type: 'ReplaceFullPath', value: raw.replaceFullPath };
  if (raw?.type === 'ReplacePrefixMatch' && raw.replacePrefixMatch !== undefined)
    return { type: 'ReplacePrefixMatch', value: raw.replacePrefixMatch };
  return undefined;
}

/** Compiles a rule's (or a backend's) Gateway API filters. */
export function compileFilters(raw: readonly unknown[]): RuleFilters {
  let requestHeaders: HeaderEdit | undefined;
  let responseHeaders: HeaderEdit | undefined;
  let redirect: Redirect | undefined;
  let rewrite: Rewrite | undefined;
  const mirrors: Mirror[] = [];
  for (const filter of raw as RawFilter[]) {
    switch (filter.type) {
      case 'RequestHeaderModifier':
        requestHeaders = headerEdit(filter.requestHeaderModifier);
        break;
      case 'ResponseHeaderModifier':
        responseHeaders = headerEdit(filter.responseHeaderModifier);
        break;
      case 'RequestRedirect': {
        const r = filter.requestRedirect ?? {};
        const path = pathChange(r.path);
        redirect = {
          ...(r.scheme ? { scheme: r.scheme } : {}),
          ...(r.hostname ? { hostname: r.hostname } : {}),
          ...(r.port ? { port: r.port } : {}),
          ...(path ? { path } : {}),
          statusCode: r.statusCode ?? 302,
        };
        break;
      }
      case 'URLRewrite': {
        const path = pathChange(filter.urlRewrite?.path);
        rewrite = {
          ...(filter.urlRewrite?.hostname ? { hostname: filter.urlRewrite.hostname } : {}),
          ...(path ? { path } : {}),
        };
        break;
      }
      case 'RequestMirror': {
        const m = filter.requestMirror;
        const ref = m?.backendRef;
        if (!ref) break;
        const fraction =
          m.fraction !== undefined
            ? m.fraction.numerator / (m.fraction.denominator ?? 100)
            : m.percent !== undefined
              ? m.percent / 100
              : 1;
        mirrors.push({
          kind: ref.kind === 'ServiceImport' ? 'ServiceImport' : 'Service',
          ...(ref.namespace ? { namespace: ref.namespace } : {}),
          name: ref.name,
          ...(ref.port !== undefined ? { port: ref.port } : {}),
          fraction: Math.max(0, Math.min(1, fraction)),
        });
        break;
      }
    }
  }
  return {
    ...(requestHeaders ? { requestHeaders } : {}),
    ...(responseHeaders ? { responseHeaders } : {}),
    ...(redirect ? { redirect } : {}),
    ...(rewrite ? { rewrite } : {}),
    mirrors,
  };
}

type HeaderMap = Record<string, string | string[] | number | undefined>;

/**
 * Applies header changes in place: `set` replaces, `add` appends to what is there (one
 * value, comma-joined), `remove` drops. Hop-by-hop and pseudo-headers cannot be touched.
 */
export function applyHeaderEdit(headers: HeaderMap, edit: HeaderEdit | undefined): void {
  if (!edit) return;
  for (const [name, value] of edit.set) if (editable(name)) headers[name] = value;
  for (const [name, value] of edit.add) {
    if (!editable(name)) continue;
    const current = headers[name];
    headers[name] =
      current === undefined
        ? value
        : `${Array.isArray(current) ? current.join(',') : String(current)},${value}`;
  }
  for (const name of edit.remove) if (editable(name)) delete headers[name];
}

const FIXED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'content-length',
  'host',
]);

function editable(name: string): boolean {
  return !name.startsWith(':') && !FIXED.has(name);
}

/**
 * A path with a PathChange applied: a full replacement, or the matched prefix (`prefix`,
 * the rule's PathPrefix value) replaced, element by element, keeping what followed it.
 */
export function changePath(path: string, change: PathChange, prefix: string | undefined): string {
  if (change.type === 'ReplaceFullPath') return change.value;
  const matched = (prefix ?? '/').replace(/\/+$/, '');
  const rest = path.slice(matched.length);
  let replacement = change.value;
  if (replacement.endsWith('/') && rest.startsWith('/')) replacement = replacement.slice(0, -1);
  const out = `${replacement}${rest}`;
  if (out === '') return '/';
  return out.startsWith('/') ? out : `/${out}`;
}

const DEFAULT_PORTS: Record<string, number> = { http: 80, https: 443 };

/**
 * The `Location` of a RequestRedirect: scheme, host and port from the filter or from the
 * request (a port the filter does not give is the scheme's well-known port when it names a
 * scheme, else the listener's), the path changed as the filter says, the query kept.
 */
export function redirectLocation(
  redirect: Redirect,
  request: {
    readonly scheme: string;
    readonly host: string;
    readonly port: number;
    readonly path: string;
    readonly query: string;
  },
  prefix: string | undefined,
): string {
  const scheme = redirect.scheme ?? request.scheme;
  const host = redirect.hostname ?? request.host;
  const port = redirect.port ?? (redirect.scheme ? DEFAULT_PORTS[scheme] : request.port);
  const path = redirect.path ? changePath(request.path, redirect.path, prefix) : request.path;
  const authority = port === undefined || port === DEFAULT_PORTS[scheme] ? host : `${host}:${port}`;
  return `${scheme}://${authority}${path}${request.query}`;
}
