/** Logs, metrics and the admin port shared by every Causeway process. */
export { createLogger, type Logger } from './logger.ts';
export { createRegistry } from './metrics.ts';
export { startAdminServer, type DebugPages, type Readiness } from './admin-server.ts';
export { exitWhenLogged, onShutdownSignal } from './shutdown.ts';
