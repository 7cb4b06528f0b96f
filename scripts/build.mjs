// `npm run build`: typechecks, then bundles each app into apps/<app>/dist/main.js with
// esbuild. Causeway's own libs are bundled in; npm packages stay external (node_modules).
import { spawnSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { bootstrap, root } from './bootstrap.mjs';
import { useProjectNode } from './node-runtime.mjs';

await useProjectNode();

// `--no-servers` (the container image): the test servers' Debian packages are not installed.
bootstrap({ kube: false, servers: !process.argv.includes('--no-servers') });
const { build } = await import('esbuild');

const typecheck = spawnSync(
  process.execPath,
  [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'],
  {
    stdio: 'inherit',
    cwd: root,
  },
);
if (typecheck.status !== 0) process.exit(typecheck.status ?? 1);

/** npm packages are external; `@causeway/*` workspace libs and relative files are bundled. */
const externalNpmPackages = {
  name: 'external-npm-packages',
  setup(pluginBuild) {
    pluginBuild.onResolve({ filter: /^[^./]/ }, (args) =>
      args.path.startsWith('@causeway/') ? undefined : { path: args.path, external: true },
    );
  },
};

const apps = readdirSync(path.join(root, 'apps')).filter((app) =>
  existsSync(path.join(root, 'apps', app, 'src/main.ts')),
);
for (const app of apps) {
  const started = Date.now();
  const outfile = path.join(root, 'apps', app, 'dist/main.js');
  await build({
    entryPoints: [path.join(root, 'apps', app, 'src/main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    sourcemap: true,
    plugins: [externalNpmPackages],
    banner: { js: '#!/usr/bin/env node' },
    logLevel: 'warning',
  });
  process.stderr.write(`built apps/${app}/dist/main.js in ${Date.now() - started} ms\n`);
}
