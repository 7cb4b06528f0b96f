#!/usr/bin/env node
// Runs the CLI from its TypeScript source through tsx, so it is never stale.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
