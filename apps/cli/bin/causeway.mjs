#!/usr/bin/env node
// Runs the CLI from its TypeScript source through tsx, so it is never stale.
import { register } from 'tsx/esm/api';
import { useProjectNode } from '../../../scripts/node-runtime.mjs';

// Under Node 24 or newer (fetched into the cache when the system one is older).
await useProjectNode();
register();
await import('../src/main.ts');
