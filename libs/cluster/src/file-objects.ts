import { parseAllDocuments } from 'yaml';
import { z } from '@causeway/config';
import { CRD_FILES } from './crds/index.ts';
import type { Schema } from './crds/schema.ts';
import { fieldPath, trafficPolicyIssues } from './crds/traffic-policy-rules.ts';
import { SOURCE_KINDS, type SourceKind, type SourceObject, type SourceProblem } from './source.ts';

/** The kinds read from files; endpoints and pods come from sidecars registering instead. */
export const FILE_KINDS = (Object.keys(SOURCE_KINDS) as SourceKind[]).filter(
  (kind) => kind !== 'EndpointSlice' && kind !== 'Pod',
);

/** One object read from a file, in its kind's cache under `namespace/name`. */
export interface FileObject {
  readonly kind: SourceKind;
  readonly object: SourceObject;
  /** A malformed ServiceExport, kept by name only (its `Valid` condition says why). */
  readonly malformed?: boolean;
}

/** What one file holds: its valid objects, and a problem for everything else. */
export interface ParsedFile {
  readonly objects: FileObject[];
  readonly problems: SourceProblem[];
  /** False when the file is not YAML at all (its earlier objects are then kept). */
  readonly parsed: boolean;
}

const dnsLabel = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS label (a-z, 0-9, -; at most 63)');
const dnsSubdomain = z
  .string()
  .max(253)
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    'must be a DNS subdomain (a-z, 0-9, -, .)',
  );
const serviceName = z
  .string()
  .regex(/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS-1035 label (starts with a letter; a-z, 0-9, -)');

const metadata = (name: z.ZodType) =>
  z.looseObject({
    name,
    namespace: dnsLabel.optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
    creationTimestamp: z.iso.datetime().optional(),
  });

/**
 * The Service fields Causeway reads, checked; other Service fields are allowed (a copy of
 * a real Service reads as it is).
 */
const serviceSpec = z.looseObject({
  type: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']).optional(),
  clusterIP: z.string().optional(),
  selector: z.record(z.string(), z.string()).optional(),
  sessionAffinity: z.enum(['None', 'ClientIP']).optional(),
  externalName: z.string().optional(),
  ports: z
    .array(
      z.looseObject({
        name: dnsLabel.optional(),
        protocol: z.enum(['TCP', 'UDP', 'SCTP']).optional(),
        appProtocol: z.string().optional(),
        port: z.number().int().min(1).max(65_535),
        targetPort: z.union([z.number().int().min(1).max(65_535), dnsLabel]).optional(),
      }),
    )
    .optional(),
});

/**
 * A CRD's OpenAPI schema made strict: an API server prunes unknown fields, but a file is
 * written by hand, so an unknown field (a typo) is reported instead of silently dropped.
 */
function strictSchema(schema: Schema): Schema {
  if (Array.isArray(schema)) return schema.map((item) => strictSchema(item as Schema)) as unknown as Schema;
  if (typeof schema !== 'object' || schema === null) return schema;
  const out: Schema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key.startsWith('x-kubernetes-')) continue;
    out[key] =
      key === 'properties'
        ? Object.fromEntries(Object.entries(value as Schema).map(([k, v]) => [k, strictSchema(v as Schema)]))
        : typeof value === 'object' && value !== null
          ? strictSchema(value as Schema)
          : value;
  }
  if (
    out.type === 'object' &&
    out.properties &&
    out.additionalProperties === undefined &&
    !schema['x-kubernetes-preserve-unknown-fields']
  )
    out.additionalProperties = false;
  return out;
}

function objectSchema(kind: SourceKind): z.ZodType {
  const api = SOURCE_KINDS[kind];
  const apiVersion = z.literal(api.group ? `${api.group}/${api.version}` : api.version);
  if (kind === 'Secret')
    // A TLS Secret (file mode: the certificates of HTTPS listeners), `data` in base64 or
    // `stringData` as text, as Kubernetes takes them.
    return z.strictObject({
      apiVersion,
      kind: z.literal(kind),
      metadata: metadata(dnsSubdomain),
      type: z.literal('kubernetes.io/tls'),
      data: z.record(z.string(), z.base64()).optional(),
      stringData: z.record(z.string(), z.string()).optional(),
      immutable: z.boolean().optional(),
    });
  if (kind === 'Service')
    return z.strictObject({
      apiVersion,
      kind: z.literal(kind),
      metadata: metadata(serviceName),
      spec: serviceSpec.optional(),
      status: z.unknown().optional(),
    });
  const definition = Object.values(CRD_FILES)
    .flat()
    .find((crd) => crd.kind === kind && crd.group === api.group)!;
  const spec = z.fromJSONSchema(strictSchema(definition.spec) as Parameters<typeof z.fromJSONSchema>[0]);
  const object = z.strictObject({
    apiVersion,
    kind: z.literal(kind),
    metadata: metadata(dnsSubdomain),
    spec: definition.requiredSpec ? spec : spec.optional(),
    status: z.unknown().optional(),
  });
  if (kind !== 'TrafficPolicy') return object;
  // The rules between fields, once the shape is right.
  return object.superRefine((value, context) => {
    for (const issue of trafficPolicyIssues(value.spec))
      context.addIssue({ code: 'custom', path: [...issue.path], message: issue.message });
  });
}

const schemas = new Map<SourceKind, z.ZodType>();
const schemaOf = (kind: SourceKind): z.ZodType => {
  let schema = schemas.get(kind);
  if (!schema) schemas.set(kind, (schema = objectSchema(kind)));
  return schema;
};

/** `spec.rules[0].matches: Invalid input` — the first few issues, each with its field. */
export function describeIssues(error: z.ZodError, limit = 3): string {
  const text = error.issues.slice(0, limit).map((issue) => {
    const field = fieldPath(issue.path);
    return field ? `${field}: ${issue.message}` : issue.message;
  });
  const more = error.issues.length - limit;
  return text.join('; ') + (more > 0 ? ` (and ${more} more)` : '');
}

/**
 * Reads the YAML (or JSON) text of one file: every document that is a valid object of a
 * kind Causeway reads becomes an object (namespace `default` when unset); each other
 * document is a problem that names the file, the document's line and the bad field. A
 * malformed ServiceExport is still listed (without its fields), so that its `Valid`
 * condition can say why it is not exported.
 */
export function parseObjects(file: string, text: string): ParsedFile {
  const documents = parseAllDocuments(text, { prettyErrors: false });
  const syntax = (Array.isArray(documents) ? documents : [documents]).flatMap((document) => document.errors);
  if (syntax.length > 0) {
    const first = syntax[0]!;
    const line = lineOf(text, first.pos[0]);
    return {
      objects: [],
      problems: [{ file, message: `not valid YAML (line ${line}): ${first.message.split('\n')[0]}` }],
      parsed: false,
    };
  }
  const objects: FileObject[] = [];
  const problems: SourceProblem[] = [];
  for (const document of Array.isArray(documents) ? documents : [documents]) {
    const line = document.contents?.range ? lineOf(text, document.contents.range[0]) : undefined;
    const where = line ? `${file}:${line}` : file;
    let value: unknown;
    try {
      // Through JSON: aliases resolved (at most 100), no cycles, only plain data (a
      // binary value becomes its JSON form); anything else is this document's problem.
      value = JSON.parse(JSON.stringify(document.toJS({ maxAliasCount: 100 }) ?? null)) as unknown;
    } catch (error) {
      problems.push({ file: where, message: `not plain data: ${(error as Error).message}` });
      continue;
    }
    if (value === null) continue;
    if (typeof value !== 'object' || Array.isArray(value)) {
      problems.push({
        file: where,
        message: 'a document must be an object with apiVersion, kind and metadata',
      });
      continue;
    }
    const raw = value as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
    const kind = FILE_KINDS.find((k) => k === raw.kind);
    const name = typeof raw.metadata?.name === 'string' ? raw.metadata.name : undefined;
    const namespace = typeof raw.metadata?.namespace === 'string' ? raw.metadata.namespace : 'default';
    const named = { ...(name ? { name, namespace } : {}) };
    if (!kind) {
      problems.push({
        file: where,
        ...(typeof raw.kind === 'string' ? { kind: raw.kind } : {}),
        ...named,
        message:
          typeof raw.kind === 'string'
            ? `kind ${raw.kind} is not read in file mode (read: ${FILE_KINDS.join(', ')})`
            : 'kind is missing',
      });
      continue;
    }
    const result = schemaOf(kind).safeParse(value);
    if (!result.success) {
      problems.push({ file: where, kind, ...named, message: describeIssues(result.error) });
      if (
        kind === 'ServiceExport' &&
        name &&
        dnsSubdomain.safeParse(name).success &&
        dnsLabel.safeParse(namespace).success
      )
        objects.push({
          kind,
          malformed: true,
          object: {
            apiVersion: `${SOURCE_KINDS[kind].group}/${SOURCE_KINDS[kind].version}`,
            kind,
            metadata: { name, namespace },
          },
        });
      continue;
    }
    const object = result.data as SourceObject;
    // Status is the controller's to write; a creation time is the controller's to give
    // (the oldest export wins a conflict, so a file must not backdate one).
    const { status: _status, ...withoutStatus } = object;
    const { creationTimestamp: _created, ...meta } = object.metadata;
    objects.push({ kind, object: { ...withoutStatus, metadata: { ...meta, namespace } } });
  }
  return { objects, problems, parsed: true };
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}
