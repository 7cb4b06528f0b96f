import os from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { listenAddress, parseDuration, splitAddress } from '@causeway/config';
import { createLogger, onShutdownSignal } from '@causeway/telemetry';
import { startGrpcEcho, startHttpEcho, type SampleApp } from './sample-apps.ts';
import { SteadyLoad } from './steady-load.ts';

const port = (value: string): number => {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65_535)
    throw new InvalidArgumentError('must be a port (0-65535)');
  return parsed;
};

/** Requests per second: one timer tick each, so at most 1,000 (and at least one a day). */
const rate = (value: string): number => {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0.00002 || parsed > 1_000)
    throw new InvalidArgumentError('must be a number of requests per second from 0.00002 to 1000');
  return parsed;
};

/** A duration a timer can wait (Node's timers hold at most 2^31 - 1 ms, about 24 days). */
const duration = (value: string): number => {
  let parsed: number;
  try {
    parsed = parseDuration(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
  if (parsed > 2_147_483_647) throw new InvalidArgumentError('must be at most 24d');
  return parsed;
};

/** A Host header value: a host name or address, and a port. */
const authority = (value: string): string => {
  if (!/^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/.test(value))
    throw new InvalidArgumentError('must be host or host:port, e.g. hello.shop.svc.clusterset.local');
  return value;
};

/** A request path: starts with /, no spaces or control characters. */
const requestPath = (value: string): string => {
  if (!/^\/[\x21-\x7e]*$/.test(value))
    throw new InvalidArgumentError('must start with / and hold no spaces or control characters');
  return value;
};

/** An address to connect to: `host:port`, any port but 0. */
const hostPort = (value: string): { host: string; port: number } => {
  if (!listenAddress.safeParse(value).success || splitAddress(value).port === 0)
    throw new InvalidArgumentError('must be host:port, e.g. 127.0.0.1:15001');
  return splitAddress(value);
};

/** Runs until SIGTERM or SIGINT, then `stop` (a second signal exits at once); says so on stderr. */
const untilSignal = (name: string, stop: () => Promise<void>): void =>
  onShutdownSignal(createLogger({ component: name, destination: process.stderr }), stop);

/**
 * `causeway sample-app`: the demo's sample service as a process (the app container of the
 * kind set-up): HTTP/1.1 that answers who it is and who called it, and the protobuf gRPC
 * service with reflection.
 */
function sampleAppCommand(): Command {
  return new Command('sample-app')
    .description(
      'the sample service: HTTP/1.1 and gRPC (causeway.demo.Echo, with reflection) answering with its service, cluster and instance, and the caller its sidecar stated; runs until SIGTERM',
    )
    .requiredOption('--service <name>', 'the service name it answers with')
    .requiredOption('--cluster <name>', 'the cluster name it answers with')
    .option('--instance <name>', 'the instance name it answers with (default: the host name)')
    .addOption(new Option('--http-port <port>', 'HTTP/1.1 port (0: none)').argParser(port).default(8080))
    .addOption(new Option('--grpc-port <port>', 'gRPC (h2c) port (0: none)').argParser(port).default(9090))
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .addOption(
      new Option(
        '--drain <duration>',
        'on SIGTERM, keep serving this long (while callers learn the instance is going), then stop',
      )
        .argParser(duration)
        .default(5_000, '5s'),
    )
    .action(
      async (options: {
        service: string;
        cluster: string;
        instance?: string;
        httpPort: number;
        grpcPort: number;
        host: string;
        drain: number;
      }) => {
        const identity = {
          service: options.service,
          cluster: options.cluster,
          instance: options.instance ?? os.hostname(),
        };
        const apps: Array<{ kind: string; app: SampleApp }> = [];
        const closeAll = async (): Promise<void> => {
          await Promise.all(apps.map(({ app }) => app.close()));
        };
        try {
          if (options.httpPort > 0)
            apps.push({ kind: 'http', app: await startHttpEcho(identity, options.httpPort, options.host) });
          if (options.grpcPort > 0)
            apps.push({ kind: 'grpc', app: await startGrpcEcho(identity, options.grpcPort, options.host) });
        } catch (error) {
          await closeAll();
          throw new SampleAppError(`cannot listen on ${options.host}: ${(error as Error).message}`);
        }
        if (apps.length === 0)
          throw new SampleAppError('--http-port and --grpc-port are both 0: nothing to serve');
        process.stdout.write(
          `${JSON.stringify({ msg: 'serving', ...identity, ...Object.fromEntries(apps.map(({ kind, app }) => [kind, `${options.host}:${app.port}`])) })}\n`,
        );
        untilSignal('sample-app', async () => {
          process.stdout.write(`${JSON.stringify({ msg: 'draining', ms: options.drain })}\n`);
          await new Promise((resolve) => setTimeout(resolve, options.drain));
          await closeAll();
        });
      },
    );
}

/**
 * `causeway load`: a steady rate of HTTP/1.1 GETs through a sidecar's outbound port to one
 * service, with a line per interval (what the kind set-up's client runs, so that the
 * dashboard always has traffic).
 */
function loadCommand(): Command {
  return new Command('load')
    .description(
      "a steady rate of HTTP GETs to a service through a sidecar's outbound port, a summary line (sent, failed, p99) per interval; runs until SIGTERM",
    )
    .addOption(
      new Option('--authority <host>', 'the service named in Host, e.g. hello.shop.svc.clusterset.local')
        .argParser(authority)
        .makeOptionMandatory(),
    )
    .addOption(
      new Option('--proxy <host:port>', "the sidecar's outbound port")
        .argParser(hostPort)
        .default({ host: '127.0.0.1', port: 15001 }, '127.0.0.1:15001'),
    )
    .addOption(new Option('--path <path>', 'request path').argParser(requestPath).default('/'))
    .addOption(new Option('--rate <n>', 'requests per second').argParser(rate).default(5))
    .addOption(
      new Option('--every <duration>', 'how often a summary line is printed')
        .argParser(duration)
        .default(10_000, '10s'),
    )
    .addOption(new Option('--timeout <duration>', 'per request').argParser(duration).default(5_000, '5s'))
    .option('--json', 'print each summary as a JSON line')
    .action(
      (options: {
        authority: string;
        proxy: { host: string; port: number };
        path: string;
        rate: number;
        every: number;
        timeout: number;
        json?: boolean;
      }) => {
        const load = SteadyLoad.start({
          host: options.proxy.host,
          port: options.proxy.port,
          authority: options.authority,
          path: options.path,
          ratePerSecond: options.rate,
          timeoutMs: options.timeout,
        });
        const report = (summary: ReturnType<SteadyLoad['take']>): void => {
          const line = { msg: 'load', authority: options.authority, ...summary };
          process.stdout.write(
            options.json
              ? `${JSON.stringify(line)}\n`
              : `${new Date().toISOString()} ${options.authority}${options.path}: ${summary.sent} sent, ${summary.failed} failed, p99 ${summary.p99Ms} ms${summary.failures.length > 0 ? `; first failures: ${summary.failures.join(' | ')}` : ''}\n`,
          );
        };
        // Each line covers requests sent at least a timeout ago: every one of them has its
        // answer or has failed by then.
        let reported = Date.now();
        const timer = setInterval(() => {
          const upTo = Date.now() - options.timeout;
          if (upTo > reported) {
            report(load.take(upTo));
            reported = upTo;
          }
        }, options.every);
        untilSignal('load', async () => {
          clearInterval(timer);
          await load.stop();
          report(load.take(Infinity));
        });
      },
    );
}

/** A bad argument to a workload command. */
export class SampleAppError extends Error {
  readonly code = 'CAUSEWAY_BAD_ARGUMENT';
}

export function workloadCommands(): Command[] {
  return [sampleAppCommand(), loadCommand()];
}
