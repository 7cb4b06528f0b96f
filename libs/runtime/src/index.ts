/** What every Causeway process shares at start and stop. */
export { CAUSEWAY_VERSION } from './version.ts';
export {
  baseConfigSchema,
  runComponent,
  type BaseConfig,
  type ComponentContext,
  type ComponentDefinition,
  type RunningComponent,
} from './component.ts';
