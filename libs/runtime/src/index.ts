/** What every Causeway process shares at start and stop. */
export { CAUSEWAY_VERSION } from './version.ts';
export { runComponent } from './component.ts';
