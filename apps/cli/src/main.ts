import { Command, InvalidArgumentError, Option } from 'commander';
import { CAUSEWAY_VERSION } from '@causeway/runtime';
import { runDemo } from './demo.ts';
import { envUp, MAX_CLUSTERS } from './env.ts';
import { natsConfigCommand, natsInitCommand } from './nats-config.ts';
import { statusCommands } from './status.ts';
import { trustCommand } from './trust.ts';
import { workloadCommands } from './workloads.ts';

function clusterCount(value: string): number {
  const count = Number(value);
  if (!Number.isInteger(count) || count < 1 || count > MAX_CLUSTERS) {
    throw new InvalidArgumentError(`must be a whole number from 1 to ${MAX_CLUSTERS}`);
  }
  return count;
}

function clusterNames(value: string): string[] {
  const names = value.split(',').map((name) => name.trim());
  const bad = names.find((name) => !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) || name.length > 63);
  if (bad !== undefined)
    throw new InvalidArgumentError(`'${bad}' is not a DNS label (lower-case letters, digits, '-')`);
  if (new Set(names).size !== names.length) throw new InvalidArgumentError('names must be unique');
  if (names.length > MAX_CLUSTERS) throw new InvalidArgumentError(`at most ${MAX_CLUSTERS} clusters`);
  return names;
}

const program = new Command('causeway')
  .description(
    'Causeway: multi-cluster federation gateway mesh. Commands for operators and for the local environment.',
  )
  .version(CAUSEWAY_VERSION, '-V, --version')
  .showHelpAfterError();

program
  .command('version')
  .description('print the Causeway version')
  .option('--json', 'print JSON')
  .action((options: { json?: boolean }) => {
    const info = {
      version: CAUSEWAY_VERSION,
      node: process.versions.node,
      platform: `${process.platform}/${process.arch}`,
    };
    process.stdout.write(
      options.json
        ? `${JSON.stringify(info)}\n`
        : `causeway ${info.version} (node ${info.node}, ${info.platform})\n`,
    );
  });

const env = program
  .command('env')
  .description(
    'a local multi-cluster environment of real servers: NATS, Redis, kube-apiserver + etcd per cluster',
  );

env
  .command('up')
  .description('start the environment, print how to reach it, and stop it all on Ctrl-C')
  .addOption(
    new Option('--clusters <n>', 'number of Kubernetes control planes').argParser(clusterCount).default(2),
  )
  .addOption(new Option('--names <a,b,...>', 'cluster names (sets the count)').argParser(clusterNames))
  .option('--no-nats', 'do not start nats-server')
  .option('--no-redis', 'do not start redis-server')
  .option('--json', 'print one JSON object (URLs, kubeconfig paths, pids) instead of a table')
  .action(
    async (options: {
      clusters: number;
      names?: string[];
      nats: boolean;
      redis: boolean;
      json?: boolean;
    }) => {
      process.exitCode = await envUp({
        clusters: options.clusters,
        names: options.names,
        nats: options.nats,
        redis: options.redis,
        json: options.json ?? false,
      });
    },
  );

program
  .command('demo')
  .description(
    'the two-cluster demo (east, west) on this machine: cross-cluster HTTP and gRPC over mTLS, the caller identity, failover; then a live view until Ctrl-C',
  )
  .option('--once', 'run the scenario and exit (0 only if every check passed)')
  .option(
    '--json',
    'print the checks as one JSON object, the only line of stdout (the live view goes to stderr)',
  )
  .addOption(
    new Option(
      '--mode <mode>',
      'auto: each service port in the mode its policies need (L4 here); L7: give every demo service a path rule that allows all, so every request is authorized on its own',
    )
      .choices(['auto', 'L7'])
      .default('auto'),
  )
  .action(async (options: { once?: boolean; json?: boolean; mode: 'auto' | 'L7' }) => {
    process.exitCode = await runDemo({
      once: options.once ?? false,
      json: options.json ?? false,
      mode: options.mode,
    });
  });

program.addCommand(trustCommand());
program.addCommand(natsConfigCommand());
program.addCommand(natsInitCommand());
for (const command of statusCommands()) program.addCommand(command);
for (const command of workloadCommands()) program.addCommand(command);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  // Expected failures (bad input, refused certificates) carry a stable code: say it plainly.
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('CAUSEWAY_')) {
    process.stderr.write(`causeway: ${(error as Error).message} (${code})\n`);
    process.exitCode = 1;
  } else {
    throw error;
  }
}
