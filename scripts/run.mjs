// `node scripts/run.mjs FILE.ts [args]`: installs what is missing, then runs a TypeScript
// entry point in this process (through tsx), so signals reach it directly.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { bootstrap, root } from './bootstrap.mjs';

const [file, ...args] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node scripts/run.mjs FILE.ts [args...]\n');
  process.exit(2);
}
const wantsHelp = args.includes('--help') || args.includes('-h') || args.length === 0;
// Help needs no servers; everything else may start the test bed.
bootstrap({ kube: !wantsHelp });
const { register } = await import('tsx/esm/api');
register();
const entry = path.resolve(root, file);
process.argv = [process.argv[0], entry, ...args];
await import(pathToFileURL(entry).href);
