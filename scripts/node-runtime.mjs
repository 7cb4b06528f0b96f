// The Node.js that Causeway runs on. Node 24 LTS is the floor; where the system Node is
// older, the official binary is fetched from the npm registry (it serves Node's release
// binaries as the platform packages `node-<os>-<cpu>`) into the project's cache, and the
// command runs again under it. Plain JavaScript with no dependencies: it runs before
// `npm install`, under whatever Node the machine has.
//
//   node scripts/node-runtime.mjs   ensures the runtime and prints its bin folder (for PATH)
//
// CAUSEWAY_NODE_VERSION=26.12.1 runs everything under that exact version instead (to test
// another release line); CAUSEWAY_CACHE_DIR moves the cache (default ~/.cache/causeway).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The release fetched when the system Node is older than the floor. */
export const PINNED_NODE_VERSION = '24.22.3';
/** The oldest major Causeway runs on. */
export const NODE_FLOOR_MAJOR = 24;
/** Set in the environment of a command started again under the fetched Node (no loops). */
const REEXEC_MARK = 'CAUSEWAY_NODE_REEXEC';

const say = (line) => process.stderr.write(`causeway: ${line}\n`);

export function cacheDir() {
  return process.env.CAUSEWAY_CACHE_DIR || path.join(os.homedir(), '.cache', 'causeway');
}

/** The version this process must run under, or undefined when the current one will do. */
export function wantedNodeVersion() {
  const requested = process.env.CAUSEWAY_NODE_VERSION?.trim();
  if (requested) {
    if (!/^\d+\.\d+\.\d+$/.test(requested)) {
      say(`CAUSEWAY_NODE_VERSION must be an exact version like 24.22.3, not '${requested}'.`);
      process.exit(2);
    }
    if (Number(requested.split('.')[0]) < NODE_FLOOR_MAJOR) {
      say(`CAUSEWAY_NODE_VERSION ${requested} is older than the floor (Node ${NODE_FLOOR_MAJOR}).`);
      process.exit(2);
    }
    return process.versions.node === requested ? undefined : requested;
  }
  const major = Number(process.versions.node.split('.')[0]);
  return major >= NODE_FLOOR_MAJOR ? undefined : PINNED_NODE_VERSION;
}

/** The npm package that carries the official binary for this platform. */
function platformPackage() {
  const oses = { linux: 'linux', darwin: 'darwin', win32: 'win' };
  const cpus = { x64: 'x64', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x' };
  const osName = oses[process.platform];
  const cpu = cpus[process.arch];
  if (!osName || !cpu) return undefined;
  return `node-${osName}-${cpu}`;
}

/**
 * The bin folder of Node `version` in the cache, fetched first when missing (about 50 MB,
 * shown as it goes). Exits with a readable message when it cannot be had.
 */
export function ensureNodeRuntime(version) {
  const home = path.join(cacheDir(), 'node', version);
  const bin = path.join(home, 'bin');
  const executable = path.join(bin, process.platform === 'win32' ? 'node.exe' : 'node');
  if (existsSync(executable)) return bin;
  const pkg = platformPackage();
  if (!pkg) {
    say(
      `Node.js >= ${NODE_FLOOR_MAJOR} is needed and no package carries it for ${process.platform}/${process.arch}:`,
    );
    say(`install Node.js ${NODE_FLOOR_MAJOR} LTS yourself (this is ${process.versions.node}).`);
    process.exit(1);
  }
  const started = Date.now();
  say(
    `this is Node.js ${process.versions.node}; fetching Node.js ${version} (npm package ${pkg}, about 50 MB) into ${home}...`,
  );
  mkdirSync(path.dirname(home), { recursive: true });
  const work = mkdtempSync(path.join(path.dirname(home), `.fetch-${version}-`));
  let problem;
  try {
    problem = fetchInto(work, pkg, version, started);
    // Another command may have finished the same fetch meanwhile: either copy is good.
    if (!problem && !existsSync(executable)) {
      try {
        renameSync(path.join(work, 'unpacked'), home);
      } catch (error) {
        if (!existsSync(executable)) problem = `could not move Node.js into ${home}: ${error.message}`;
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (problem) {
    say(problem);
    process.exit(1);
  }
  say(`Node.js ${version} is ready (${((Date.now() - started) / 1000).toFixed(1)} s).`);
  return bin;
}

/** Fetches and unpacks the package into `work/unpacked`; says what went wrong, if anything. */
function fetchInto(work, pkg, version, started) {
  const packed = spawnSync(
    'npm',
    ['pack', `${pkg}@${version}`, '--pack-destination', work, '--silent', '--no-audit', '--no-fund'],
    { cwd: work, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const tarball = packed.stdout?.trim().split('\n').pop();
  if (packed.status !== 0 || !tarball)
    return `npm pack ${pkg}@${version} failed; install Node.js ${NODE_FLOOR_MAJOR} LTS yourself.`;
  say(`fetched ${tarball} in ${((Date.now() - started) / 1000).toFixed(1)} s; unpacking...`);
  const unpacked = path.join(work, 'unpacked');
  mkdirSync(unpacked);
  // Only the executable and the licence: the headers are for native add-on builds.
  const tar = spawnSync(
    'tar',
    [
      '-xzf',
      path.join(work, tarball),
      '-C',
      unpacked,
      '--strip-components=1',
      'package/bin',
      'package/LICENSE',
    ],
    { stdio: 'inherit' },
  );
  if (tar.status !== 0) return `unpacking ${tarball} failed.`;
  const check = spawnSync(path.join(unpacked, 'bin', 'node'), ['--version'], { encoding: 'utf8' });
  if (check.status !== 0 || check.stdout.trim() !== `v${version}`)
    return `the fetched binary does not run here (${check.error?.message ?? check.stderr?.trim() ?? 'no output'}).`;
  return undefined;
}

/**
 * Runs this command again under the project's Node when the current one is older than the
 * floor (or not the requested CAUSEWAY_NODE_VERSION): same arguments, same terminal, its
 * exit status passed on, SIGINT/SIGTERM/SIGHUP passed to it. Returns only when the current
 * Node will do.
 */
export function useProjectNode() {
  const version = wantedNodeVersion();
  if (!version) return;
  if (process.env[REEXEC_MARK]) {
    say(`started under Node.js ${process.versions.node}, wanted ${version}: giving up instead of looping.`);
    process.exit(1);
  }
  const bin = ensureNodeRuntime(version);
  // Its own process group: a Ctrl-C reaches it once, through this process, not twice.
  const child = spawn(path.join(bin, 'node'), [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    detached: true,
    env: { ...process.env, [REEXEC_MARK]: '1', PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` },
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  // However this wrapper ends, the command it started does not outlive it.
  process.once('exit', () => child.exitCode === null && child.signalCode === null && child.kill('SIGTERM'));
  child.once('error', (error) => {
    say(`could not start Node.js ${version}: ${error.message}`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      // Die the same way, so the caller sees what happened.
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    }
    process.exit(code ?? 1);
  });
  // Nothing else of this process may run: wait here for the child.
  return new Promise(() => {});
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const version = wantedNodeVersion();
  process.stdout.write(`${version ? ensureNodeRuntime(version) : path.dirname(process.execPath)}\n`);
}
