// A fixed-rate load generator in a process of its own, so that the bench process (which
// also reads every component's log lines) does not add its own delays to what is measured.
// `node --import tsx bench/fixed-rate-process.ts '{"port":…,"host":…,"rate":…,"seconds":…,"path":…}'`
// prints the latency percentiles as one JSON line.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { repoRoot } from '@causeway/testing';
import { fixedRate } from './sidecar.ts';

const WARM_UP_SECONDS = 2;

interface Load {
  readonly port: number;
  readonly host: string;
  readonly rate: number;
  readonly seconds: number;
  readonly path: string;
}

type Latency = Awaited<ReturnType<typeof fixedRate>>;

/** `fixedRate` run in a child process. */
export async function fixedRateApart(load: Load): Promise<Latency> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), JSON.stringify(load)],
    { cwd: repoRoot, encoding: 'utf8', timeout: (load.seconds + 60) * 1000 },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Latency;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const load = JSON.parse(process.argv[2]!) as Load;
  // Two seconds unmeasured first: this process's own start (its code not yet compiled, its
  // connections not yet open) is not the proxy's latency.
  await fixedRate(load.port, load.host, load.rate, WARM_UP_SECONDS, undefined, load.path);
  const result = await fixedRate(load.port, load.host, load.rate, load.seconds, undefined, load.path);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
