/**
 * Small builders for OpenAPI v3 structural schemas, so that the CRDs in infra/crds are
 * written once, in one place, with shared pieces (conditions, references, durations).
 */
export type Schema = Record<string, unknown>;

export const str = (extra: Schema = {}): Schema => ({ type: 'string', ...extra });
export const int = (minimum?: number, maximum?: number, extra: Schema = {}): Schema => ({
  type: 'integer',
  format: 'int32',
  ...(minimum === undefined ? {} : { minimum }),
  ...(maximum === undefined ? {} : { maximum }),
  ...extra,
});
export const bool = (extra: Schema = {}): Schema => ({ type: 'boolean', ...extra });
export const enumOf = (values: readonly (string | number)[], extra: Schema = {}): Schema => ({
  type: typeof values[0] === 'number' ? 'integer' : 'string',
  enum: [...values],
  ...extra,
});
export const arr = (items: Schema, maxItems?: number, extra: Schema = {}): Schema => ({
  type: 'array',
  items,
  ...(maxItems === undefined ? {} : { maxItems }),
  ...extra,
});
export const obj = (
  properties: Record<string, Schema>,
  required: readonly string[] = [],
  extra: Schema = {},
): Schema => ({
  type: 'object',
  properties,
  ...(required.length > 0 ? { required: [...required] } : {}),
  ...extra,
});
export const stringMap = (extra: Schema = {}): Schema => ({
  type: 'object',
  additionalProperties: { type: 'string' },
  ...extra,
});

/** Gateway API's Duration: up to four `<number><unit>` parts, e.g. `1h30m`, `250ms`. */
export const duration = (): Schema => str({ pattern: '^([0-9]{1,5}(h|m|s|ms)){1,4}$' });
/** RFC 1123 DNS subdomain. */
export const dnsSubdomain = (): Schema =>
  str({
    minLength: 1,
    maxLength: 253,
    pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
  });
/** RFC 1123 DNS label. */
export const dnsLabel = (): Schema =>
  str({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' });
/** An API group: empty (core) or a DNS subdomain. */
export const group = (): Schema =>
  str({ maxLength: 253, pattern: '^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$' });
export const kind = (): Schema =>
  str({ minLength: 1, maxLength: 63, pattern: '^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$' });
export const objectName = (): Schema => str({ minLength: 1, maxLength: 253 });
export const sectionName = (): Schema =>
  str({
    minLength: 1,
    maxLength: 253,
    pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
  });
export const port = (): Schema => int(1, 65535);
/** A Gateway API hostname: DNS name, optionally with a leading `*.` wildcard label. */
export const hostname = (): Schema =>
  str({
    minLength: 1,
    maxLength: 253,
    pattern: '^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
  });

/** `metav1.Condition`, as every status in these APIs uses it. */
export const condition = (): Schema =>
  obj(
    {
      type: str({
        maxLength: 316,
        pattern:
          '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
      }),
      status: enumOf(['True', 'False', 'Unknown']),
      observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
      lastTransitionTime: str({ format: 'date-time' }),
      reason: str({ minLength: 1, maxLength: 1024, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' }),
      message: str({ maxLength: 32768 }),
    },
    ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
  );

/** A list of conditions keyed by type (server-side apply merges by type). */
export const conditions = (): Schema =>
  arr(condition(), 8, { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] });

/** A CustomResourceDefinition, as plain data. */
export interface CrdDefinition {
  readonly group: string;
  readonly kind: string;
  readonly plural: string;
  readonly singular: string;
  readonly listKind?: string;
  readonly shortNames?: readonly string[];
  readonly categories?: readonly string[];
  readonly scope: 'Namespaced' | 'Cluster';
  readonly annotations?: Readonly<Record<string, string>>;
  readonly version: string;
  readonly spec: Schema;
  readonly status?: Schema;
  readonly requiredSpec?: boolean;
  readonly printerColumns?: readonly { name: string; type: string; jsonPath: string; description?: string }[];
}

/** Renders a definition as a `apiextensions.k8s.io/v1` CustomResourceDefinition object. */
export function renderCrd(definition: CrdDefinition): Record<string, unknown> {
  const properties: Record<string, Schema> = {
    apiVersion: str(),
    kind: str(),
    metadata: { type: 'object' },
    spec: definition.spec,
  };
  if (definition.status) properties.status = definition.status;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${definition.plural}.${definition.group}`,
      labels: { 'app.kubernetes.io/part-of': 'causeway' },
      ...(definition.annotations ? { annotations: { ...definition.annotations } } : {}),
    },
    spec: {
      group: definition.group,
      scope: definition.scope,
      names: {
        kind: definition.kind,
        listKind: definition.listKind ?? `${definition.kind}List`,
        plural: definition.plural,
        singular: definition.singular,
        ...(definition.shortNames ? { shortNames: [...definition.shortNames] } : {}),
        ...(definition.categories ? { categories: [...definition.categories] } : {}),
      },
      versions: [
        {
          name: definition.version,
          served: true,
          storage: true,
          ...(definition.status ? { subresources: { status: {} } } : {}),
          additionalPrinterColumns: [
            ...(definition.printerColumns ?? []),
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: obj(properties, definition.requiredSpec ? ['spec'] : []),
          },
        },
      ],
    },
  };
}
