// Installs what Causeway's commands need on this machine, showing progress, and says
// what to install by hand where it cannot (not Debian, not root). Plain JavaScript with
// no dependencies: it runs before `npm install`.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_FLOOR_MAJOR, useProjectNode } from './node-runtime.mjs';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Debian packages and the executables that show each is installed. */
const DEBIAN_PACKAGES = [
  { bin: 'nats-server', pkg: 'nats-server' },
  { bin: 'redis-server', pkg: 'redis-server' },
  { bin: 'prometheus', pkg: 'prometheus' },
  { bin: 'openssl', pkg: 'openssl' },
  { bin: 'shellcheck', pkg: 'shellcheck' },
];

const say = (line) => process.stderr.write(`causeway: ${line}\n`);

function fail(lines) {
  for (const line of lines) say(line);
  process.exit(1);
}

function onPath(name) {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const dir of dirs.filter(Boolean)) {
    try {
      accessSync(path.join(dir, name), constants.X_OK);
      return path.join(dir, name);
    } catch {
      // keep looking
    }
  }
  return undefined;
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: root, ...options });
  if (result.error) return { ok: false, error: result.error };
  return { ok: result.status === 0, status: result.status };
}

function mtime(file) {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

export function checkNode() {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < NODE_FLOOR_MAJOR) {
    fail([
      `Node.js >= ${NODE_FLOOR_MAJOR} is needed; this is ${process.versions.node}.`,
      'the npm scripts fetch it themselves (scripts/node-runtime.mjs); or install Node.js 24 LTS.',
    ]);
  }
}

/** `npm ci` when node_modules is missing or older than package-lock.json. */
export function ensureNodeModules() {
  const lock = mtime(path.join(root, 'package-lock.json'));
  const installed = mtime(path.join(root, 'node_modules/.package-lock.json'));
  if (installed !== undefined && lock !== undefined && installed >= lock) return;
  say('installing npm packages (npm ci)...');
  const result = run('npm', ['ci', '--no-audit', '--no-fund'], {
    env: { ...process.env, npm_config_loglevel: 'warn' },
  });
  if (!result.ok) fail(['npm ci failed; run it yourself to see why.']);
}

/** apt-get install of the servers the test bed runs, when missing and possible. */
export function ensureDebianPackages() {
  const missing = DEBIAN_PACKAGES.filter(({ bin }) => !onPath(bin));
  if (missing.length === 0) return;
  const names = missing.map(({ pkg }) => pkg);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!onPath('apt-get') || !isRoot) {
    fail([
      `missing: ${missing.map(({ bin }) => bin).join(', ')}.`,
      onPath('apt-get')
        ? `run as root, or install them yourself: sudo apt-get install -y ${names.join(' ')}`
        : `this is not a Debian-like system: install ${names.join(', ')} with your package manager and put them on PATH.`,
    ]);
  }
  say(`installing Debian packages: ${names.join(', ')} (apt-get)...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!run('apt-get', ['update', '-q'], { env }).ok) fail(['apt-get update failed.']);
  if (!run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...names], { env }).ok) {
    fail([`apt-get install ${names.join(' ')} failed.`]);
  }
  const still = DEBIAN_PACKAGES.filter(({ bin }) => !onPath(bin));
  if (still.length > 0) fail([`still missing after apt-get: ${still.map(({ bin }) => bin).join(', ')}`]);
}

/** kube-apiserver, etcd and kubectl, unless KUBE_APISERVER_BIN and ETCD_BIN name the first two. */
export function ensureKubeBinaries() {
  if (process.env.KUBE_APISERVER_BIN && process.env.ETCD_BIN) return;
  const result = spawnSync('bash', [path.join(root, 'scripts/build-kube-bins.sh')], {
    stdio: ['ignore', 'ignore', 'inherit'],
    cwd: root,
  });
  if (result.status !== 0) {
    fail([
      'building kube-apiserver, etcd and kubectl failed (see above); KUBE_APISERVER_BIN, ETCD_BIN and KUBECTL_BIN may name binaries you have.',
    ]);
  }
}

/** Everything, in order: Node, npm packages, Debian packages, Kubernetes binaries. */
export function bootstrap({ kube = true, servers = true } = {}) {
  checkNode();
  ensureNodeModules();
  if (servers) ensureDebianPackages();
  if (kube) ensureKubeBinaries();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await useProjectNode();
  const kube = !process.argv.includes('--no-kube');
  bootstrap({ kube });
  say('prerequisites are in place.');
}
