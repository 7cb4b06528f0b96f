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
