// Writes infra/crds/*.yaml from the definitions in libs/cluster/src/crds.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCrdFiles } from '@causeway/cluster';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../infra/crds');
await mkdir(dir, { recursive: true });
for (const [file, text] of Object.entries(renderCrdFiles())) {
  await writeFile(path.join(dir, file), text);
  console.log(`wrote infra/crds/${file}`);
}
