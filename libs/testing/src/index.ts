/**
 * The test bed: real nats-server, redis-server, prometheus and kube-apiserver + etcd
 * processes on free loopback ports, each with its own temporary folder.
 */
export { TestbedError, type TestbedErrorCode } from './errors.ts';
export { freePort, freePorts } from './ports.ts';
export { withEnv } from './env-vars.ts';
export { ManagedProcess } from './managed-process.ts';
export {
  findOnPath,
  kubeBinaries,
  repoRoot,
  requireSystemServer,
  SYSTEM_SERVERS,
  type KubeBinaries,
} from './binaries.ts';
export { startNats, type NatsOptions, type NatsServer } from './nats.ts';
export { startRedis, type RedisServer } from './redis.ts';
export {
  startPrometheus,
  type PrometheusOptions,
  type PrometheusServer,
  type PromSample,
  type ScrapeJob,
} from './prometheus.ts';
export {
  eventually,
  serviceCidrFor,
  startKubeControlPlane,
  type KubeControlPlane,
  type KubeControlPlaneOptions,
} from './kube.ts';
export { crdDir, installCrds, loadCrds } from './crds.ts';
export { MAX_CLUSTERS, startEnvironment, type Environment, type EnvironmentOptions } from './environment.ts';
