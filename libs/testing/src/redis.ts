import path from 'node:path';
import { requireSystemServer } from './binaries.ts';
import { ManagedProcess, looksLikePortClash, startWithPortRetry } from './managed-process.ts';
import { freePort } from './ports.ts';
import { tcpExchange } from './probe.ts';
import { RestartableServer } from './restartable-server.ts';
import { makeTempDir } from './temp-dir.ts';

/** A running redis-server on loopback, without persistence. */
export interface RedisServer {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly process: () => ManagedProcess;
  stop(): Promise<void>;
  restart(): Promise<void>;
  dispose(): Promise<void>;
}

export async function startRedis(options: { startTimeoutMs?: number } = {}): Promise<RedisServer> {
  const binary = requireSystemServer('redis-server');
  const temp = await makeTempDir('redis');
  let port = 0;
  const server = new RestartableServer(temp, () =>
    ManagedProcess.startReady(
      {
        name: 'redis-server',
        command: binary,
        args: [
          ...['--bind', '127.0.0.1', '--port', String(port), '--dir', temp.path],
          ...['--save', '', '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'yes'],
        ],
        logFile: path.join(temp.path, 'redis.log'),
      },
      async () => (await tcpExchange(port, 'PING\r\n')).startsWith('+PONG'),
      options.startTimeoutMs ?? 10_000,
    ),
  );

  await startWithPortRetry(async () => {
    port = await freePort();
    await server.start();
  }, looksLikePortClash);

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    process: server.process,
    stop: server.stop,
    restart: server.restart,
    dispose: server.dispose,
  };
}
