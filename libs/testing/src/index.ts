/**
 * The test bed: real nats-server, redis-server, prometheus and kube-apiserver + etcd
 * processes on free loopback ports, each with its own temporary folder.
 */
export { freePort } from './ports.ts';
export { withEnv } from './env-vars.ts';
export { findOnPath, kubeBinaries, repoRoot } from './binaries.ts';
export { startNats, type NatsOptions, type NatsServer } from './nats.ts';
export { startRedis, type RedisServer } from './redis.ts';
export { startPrometheus, type PrometheusServer, type PromSample } from './prometheus.ts';
export { eventually, startKubeControlPlane, type KubeControlPlane } from './kube.ts';
export { kubectl, kubectlBinary, kubectlGet } from './kubectl.ts';
export { grpcurl } from './grpcurl.ts';
export { crdDir, installCrds } from './crds.ts';
export { MAX_CLUSTERS, startEnvironment, type Environment } from './environment.ts';
