// `npm test`: installs what is missing, then runs the unit tests (beside the code) and the
// integration tests (test/, against real servers) with node's test runner.
//   --unit         unit tests only (no servers, no Kubernetes build)
//   --integration  integration tests only
//   other args     test files or name filters passed on (`--test-name-pattern=...`)
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { bootstrap, root } from './bootstrap.mjs';
import { useProjectNode } from './node-runtime.mjs';

await useProjectNode();

const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const integrationOnly = args.includes('--integration');
const passOn = args.filter((arg) => arg !== '--unit' && arg !== '--integration');

function find(dir, accept, found = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist' || entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) find(full, accept, found);
    else if (accept(full)) found.push(path.relative(root, full));
  }
  return found;
}

const isTest = (file) => file.endsWith('.test.ts');
const unitFiles = ['libs', 'apps'].flatMap((dir) => find(path.join(root, dir), isTest));
const integrationFiles = find(path.join(root, 'test'), isTest);
const explicitFiles = passOn.filter((arg) => !arg.startsWith('-'));
const flags = passOn.filter((arg) => arg.startsWith('-'));

let files;
if (explicitFiles.length > 0) files = explicitFiles;
else if (unitOnly) files = unitFiles;
else if (integrationOnly) files = integrationFiles;
else files = [...unitFiles, ...integrationFiles];

const needsServers = files.some((file) => file.startsWith('test'));
bootstrap({ kube: needsServers });

process.stderr.write(`causeway: running ${files.length} test files\n`);
// One file at a time: integration files start real API servers and 2 cores are few.
const result = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-reporter=spec',
    '--test-concurrency=1',
    '--test-timeout=300000',
    ...flags,
    ...files,
  ],
  { stdio: 'inherit', cwd: root },
);
process.exit(result.status ?? 1);
