import { ConfigError } from './errors.ts';

/**
 * The one place that reads process.env. Variables are named `CAUSEWAY_<FIELD>` with the
 * field path upper-cased and dots as underscores: `CAUSEWAY_ADMIN_ADDRESS`.
 */
export function readEnvironment(
  fields: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const found: Record<string, string> = {};
  for (const field of fields) {
    const name = envName(field);
    const value = env[name];
    if (value !== undefined && value !== '') found[field] = value;
  }
  return found;
}

export function envName(field: string): string {
  return `CAUSEWAY_${field
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .replace(/\./g, '_')
    .toUpperCase()}`;
}

/** `${NAME}`, `$$`, or a malformed `${…` (group 1, 2 or neither). */
const REFERENCE = /\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|(\$)|\{[^}]*\}?)/g;

/** `value` with each string in it (at any depth) replaced by `change(string, dotted path)`. */
function mapStrings(value: unknown, change: (text: string, path: string) => string, path = ''): unknown {
  if (typeof value === 'string') return change(value, path);
  const at = (key: string | number) => (path ? `${path}.${key}` : String(key));
  if (Array.isArray(value)) return value.map((item, index) => mapStrings(item, change, at(index)));
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, mapStrings(item, change, at(key))]),
    );
  return value;
}

/**
 * A settings file's strings with `${NAME}` replaced by the environment variable NAME (what a
 * Kubernetes pod gets from the downward API or a ConfigMap: its IP, the node's, the cluster's
 * name), and `$$` by `$`. The file is parsed first, so a value can never add YAML structure.
 * A variable that is unset or empty, or a malformed reference, is a {@link ConfigError}
 * naming the field; nothing else is changed (a `$` not followed by `{` or `$` stays).
 */
export function expandEnvironment(
  input: unknown,
  source: string,
  env: NodeJS.ProcessEnv = process.env,
): unknown {
  const problems: string[] = [];
  const expanded = mapStrings(input, (text, path) =>
    text.replace(REFERENCE, (whole, name: string | undefined, dollar: string | undefined) => {
      if (dollar) return '$';
      if (name === undefined) {
        problems.push(
          `${path || '(root)'}: '${whole}' is not a reference to an environment variable (\${NAME}, or $$ for a $)`,
        );
        return whole;
      }
      const found = env[name];
      if (found === undefined || found === '') {
        problems.push(`${path || '(root)'}: environment variable ${name} is not set`);
        return whole;
      }
      return found;
    }),
  );
  if (problems.length > 0) throw new ConfigError(source, problems);
  return expanded;
}

/**
 * The inverse of {@link expandEnvironment} for a settings file a program writes: every `$`
 * in a string doubled, so that a path or a token holding one is read back as it was.
 */
export function escapeEnvironment<T>(input: T): T {
  return mapStrings(input, (text) => text.replaceAll('$', '$$$$')) as T;
}
