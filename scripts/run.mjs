// `node scripts/run.mjs [--no-kube] FILE.ts [args]`: installs what is missing, then runs a TypeScript
// entry point in this process (through tsx), so signals reach it directly.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { bootstrap, root } from './bootstrap.mjs';
import { useProjectNode } from './node-runtime.mjs';

// Under Node 24 or newer (fetched into the cache when the system one is older).
await useProjectNode();

// `--no-kube` (before FILE): the entry point needs no Kubernetes binaries.
const noKube = process.argv[2] === '--no-kube';
const [file, ...args] = process.argv.slice(noKube ? 3 : 2);
if (!file) {
  process.stderr.write('usage: node scripts/run.mjs FILE.ts [args...]\n');
  process.exit(2);
}
const wantsHelp = args.includes('--help') || args.includes('-h') || args.length === 0;
// Help needs no servers; everything else may start the test bed.
bootstrap({ kube: !wantsHelp && !noKube });
const { register } = await import('tsx/esm/api');
register();
const entry = path.resolve(root, file);
process.argv = [process.argv[0], entry, ...args];
await import(pathToFileURL(entry).href);
