/** Configuration: one schema per app, defaults in one object, validated once at start. */
export { z } from 'zod';
export { ConfigError } from './errors.ts';
export { parseConfig } from './parse.ts';
export { envName, escapeEnvironment, expandEnvironment, readEnvironment } from './env.ts';
export { listenAddress, logLevel, splitAddress } from './address.ts';
export { durationSetting, formatDuration, parseDuration } from './duration.ts';
export { StateFile } from './state-file.ts';
export { Backoff, jitter } from './backoff.ts';
