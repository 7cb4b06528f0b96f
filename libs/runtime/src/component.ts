import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import {
  ConfigError,
  envName,
  expandEnvironment,
  listenAddress,
  logLevel,
  parseConfig,
  readEnvironment,
  splitAddress,
  z,
} from '@causeway/config';
import {
  createLogger,
  createRegistry,
  onShutdownSignal,
  startAdminServer,
  type DebugPages,
  type Logger,
  type Readiness,
} from '@causeway/telemetry';
import type { Registry } from 'prom-client';
import { CAUSEWAY_VERSION } from './version.ts';

/** Settings every Causeway process has. */
export const baseConfigSchema = z.object({
  adminAddress: listenAddress,
  logLevel,
});
export type BaseConfig = z.output<typeof baseConfigSchema>;

/** What a component's own code gets once the shared parts are running. */
export interface ComponentContext<C = undefined> {
  readonly config: BaseConfig;
  /** The component's own settings from `--config FILE`, validated by its schema. */
  readonly settings: C;
  readonly logger: Logger;
  readonly registry: Registry;
}

/** A running component: its readiness and how to stop it. */
export interface RunningComponent {
  readiness(): Readiness;
  stop(): Promise<void>;
  /** JSON pages under `/debug/` on the admin port (e.g. `config`, `catalog`). */
  readonly debug?: DebugPages;
}

export interface ComponentDefinition<C = undefined> {
  /** e.g. `sidecar`; the command is `causeway-<name>`. */
  readonly name: string;
  /** One paragraph for `--help`. */
  readonly description: string;
  /** What this build of the component does today, shown after `--help`. */
  readonly status?: string;
  /** Default admin listen address (each component has its own, so all fit on one host). */
  readonly defaultAdminAddress: string;
  /** Schema of the component's YAML config file; with it, `--config FILE` is required. */
  readonly settingsSchema?: z.ZodType<C>;
  /** One line for `--help` about what the config file holds. */
  readonly settingsHelp?: string;
  readonly start: (context: ComponentContext<C>) => Promise<RunningComponent>;
}

/**
 * Reads the YAML settings file, expands `${NAME}` in its strings from the environment and
 * validates it; a bad file stops the process with exit 2.
 */
async function loadSettings<C>(schema: z.ZodType<C>, file: string, name: string): Promise<C> {
  let raw: unknown;
  try {
    raw = parseYaml(await readFile(file, 'utf8'));
  } catch (error) {
    process.stderr.write(`causeway-${name}: cannot read ${file}: ${(error as Error).message}\n`);
    process.exit(2);
  }
  try {
    return parseConfig(schema, expandEnvironment(raw, file), file);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`causeway-${name}: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}

function checkedAddress(value: string): string {
  const parsed = listenAddress.safeParse(value);
  if (!parsed.success) throw new InvalidArgumentError(parsed.error.issues[0]!.message);
  return value;
}

/**
 * The `main` of a component: `--help`/`--version`, config from defaults < environment <
 * flags (validated once), JSON logs, the admin port, and a graceful stop on SIGTERM/SIGINT.
 */
export async function runComponent<C = undefined>(
  definition: ComponentDefinition<C>,
  argv = process.argv,
): Promise<void> {
  const defaults: BaseConfig = { adminAddress: definition.defaultAdminAddress, logLevel: 'info' };
  const program = new Command(`causeway-${definition.name}`)
    .description(definition.description)
    .version(CAUSEWAY_VERSION, '-V, --version')
    .addOption(
      new Option(
        '--admin-address <host:port>',
        `admin port: /livez, /readyz, /metrics [env ${envName('adminAddress')}]`,
      )
        .default(defaults.adminAddress)
        .argParser(checkedAddress),
    )
    .addOption(
      new Option('--log-level <level>', `log level [env ${envName('logLevel')}]`)
        .choices(logLevel.options)
        .default(defaults.logLevel),
    )
    .addHelpText('after', definition.status ? `\nStatus: ${definition.status}` : '')
    .showHelpAfterError()
    .allowExcessArguments(false);
  if (definition.settingsSchema) {
    program.requiredOption(
      '--config <file>',
      `YAML settings file${definition.settingsHelp ? `: ${definition.settingsHelp}` : ''}`,
    );
  }
  program.parse(argv);
  const flags = program.opts<Partial<BaseConfig> & { config?: string }>();
  const fromFlags = Object.fromEntries(
    Object.entries(flags).filter(([key]) => key !== 'config' && program.getOptionValueSource(key) === 'cli'),
  );
  let config: BaseConfig;
  try {
    config = parseConfig(
      baseConfigSchema,
      { ...defaults, ...readEnvironment(Object.keys(defaults)), ...fromFlags },
      'defaults, CAUSEWAY_* environment and flags',
    );
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`causeway-${definition.name}: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  let settings = undefined as C;
  if (definition.settingsSchema && flags.config) {
    settings = await loadSettings(definition.settingsSchema, flags.config, definition.name);
  }

  const logger = createLogger({ component: definition.name, level: config.logLevel });
  const registry = createRegistry({ component: definition.name, version: CAUSEWAY_VERSION });
  const starting = (async () => {
    const running = await definition.start({ config, settings, logger, registry });
    const { host, port } = splitAddress(config.adminAddress);
    const admin = await startAdminServer({
      host,
      port,
      registry,
      readiness: () => running.readiness(),
      debug: running.debug,
    });
    return { running, admin };
  })();
  // From the first moment: a signal during the start stops what has started once it has.
  onShutdownSignal(logger, async () => {
    const started = await starting.catch(() => undefined);
    await started?.running.stop();
    await started?.admin.close();
  });
  const { admin } = await starting;
  logger.info({ admin: admin.url, version: CAUSEWAY_VERSION }, 'started');
}
