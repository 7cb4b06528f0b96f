// `npm run bench -- <name> [--json]`: on-demand benchmarks. Each prints a readable table on
// stderr and, as the last line of stdout, one JSON object.
import { Command } from 'commander';
import { catalogScaleBench } from './catalog-scale.ts';
import { chaosBench } from './chaos.ts';
import { convergenceBench } from './convergence.ts';
import { ingressBench } from './ingress.ts';
import { pkiBench } from './pki.ts';
import { sidecarBench } from './sidecar.ts';

const program = new Command('bench').description(
  'Causeway benchmarks (run on demand, not in the test suite)',
);
program
  .command('pki')
  .description('workload certificates signed per second by one controller (CSR check + issue)')
  .option('--json', 'print the result as JSON on the last stdout line')
  .option('--count <n>', 'certificates to sign', (v) => Number(v), 2000)
  .option('--key-type <type>', 'ecdsa-p256 or rsa-2048', 'ecdsa-p256')
  .action(async (options: { json?: boolean; count: number; keyType: 'ecdsa-p256' | 'rsa-2048' }) => {
    await pkiBench(options);
  });
program
  .command('convergence')
  .description(
    'ServiceExport in east -> ServiceImport in west, and -> a proxy in west acking it (real API servers, NATS, controllers)',
  )
  .option('--json', 'print the result as JSON on the last stdout line')
  .option('--trials <n>', 'exports to time', (v) => Number(v), 100)
  .action(async (options: { json?: boolean; trials: number }) => {
    await convergenceBench(options);
  });
program
  .command('catalog-scale')
  .description(
    'N clusters x M services of signed records in NATS cold-synced into one controller, then sustained updates',
  )
  .option('--json', 'print the result as JSON on the last stdout line')
  .option('--clusters <n>', 'simulated clusters', (v) => Number(v), 100)
  .option('--services <n>', 'exported services per cluster', (v) => Number(v), 1000)
  .option('--rate <n>', 'record updates per second after the cold sync', (v) => Number(v), 1000)
  .option('--seconds <n>', 'how long the updates run', (v) => Number(v), 10)
  .action(
    async (options: {
      json?: boolean;
      clusters: number;
      services: number;
      rate: number;
      seconds: number;
    }) => {
      await catalogScaleBench(options);
    },
  );
program
  .command('chaos')
  .description(
    'under a fixed cross-cluster load: controllers killed and restarted, the catalog bucket wiped, NATS stopped (failed requests, repair and detection times)',
  )
  .option('--json', 'print the result as JSON on the last stdout line')
  .option('--rate <n>', 'requests per second of the load', (v) => Number(v), 100)
  .option('--nats-outage-seconds <n>', 'how long NATS stays down', (v) => Number(v), 120)
  .option(
    '--unsafe-bucket',
    'make the catalog bucket beforehand as older releases did (purges and rollups allowed), so the wipe uses them too',
  )
  .action(
    async (options: { json?: boolean; rate: number; natsOutageSeconds: number; unsafeBucket?: boolean }) => {
      await chaosBench(options);
    },
  );
program
  .command('ingress')
  .description(
    'the ingress gateway against a bare @fastify/http-proxy and nginx in front of the same app; 10 against 10,000 routes; the latency a Redis-backed rate limit adds',
  )
  .option('--json', 'print the result as JSON on the last stdout line')
  .option('--rate <n>', 'requests per second for the latency figures', (v) => Number(v), 1000)
  .option('--seconds <n>', 'how long each measurement runs', (v) => Number(v), 10)
  .action(async (options: { json?: boolean; rate: number; seconds: number }) => {
    await ingressBench(options);
  });
program
  .command('sidecar')
  .description(
    'client -> app directly, through two Causeway sidecars (mTLS), through two nginx as the same mTLS pair, and through two plain Node.js proxies: latency at a fixed rate, throughput at saturation, proxy RSS',
  )
  .option('--json', 'print the result as JSON on the last stdout line')
  .option('--rate <n>', 'requests per second for the latency figures', (v) => Number(v), 1000)
  .option('--seconds <n>', 'how long each measurement runs', (v) => Number(v), 10)
  .option(
    '--hold',
    'start every hop, print where it listens and its processes, and wait for Ctrl-C (to profile with your own tools)',
  )
  .action(async (options: { json?: boolean; rate: number; seconds: number; hold?: boolean }) => {
    await sidecarBench(options);
  });
await program.parseAsync(process.argv);
