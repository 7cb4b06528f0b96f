/** A configuration value was missing or wrong; the message names the field and the value. */
export class ConfigError extends Error {
  readonly code = 'CAUSEWAY_CONFIG_INVALID';
  /** Each problem as `path: message`, e.g. `admin.port: must be at most 65535 (got 70000)`. */
  readonly problems: readonly string[];
  constructor(source: string, problems: readonly string[]) {
    super(`invalid configuration from ${source}:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}
