/**
 * Runs `make` with environment variables set (undefined: unset) and puts them back as they
 * were before returning: for clients that read their settings from the environment when they
 * are made (grpc-js reads `grpc_proxy` when a channel is created).
 */
export function withEnv<T>(vars: Readonly<Record<string, string | undefined>>, make: () => T): T {
  const saved = Object.entries(vars).map(([name]) => [name, process.env[name]] as const);
  const apply = (entries: ReadonlyArray<readonly [string, string | undefined]>): void => {
    for (const [name, value] of entries) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  apply(Object.entries(vars));
  try {
    return make();
  } finally {
    apply(saved);
  }
}
