import path from 'node:path';
import { requireSystemServer } from './binaries.ts';
import { ManagedProcess, looksLikePortClash, startWithPortRetry } from './managed-process.ts';
import { freePort } from './ports.ts';
import { tcpExchange } from './probe.ts';
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
  let current: ManagedProcess | undefined;

  const launch = async (): Promise<void> => {
    const proc = await ManagedProcess.start({
      name: 'redis-server',
      command: binary,
      args: [
        '--bind',
        '127.0.0.1',
        '--port',
        String(port),
        '--dir',
        temp.path,
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
        '--protected-mode',
        'yes',
      ],
      logFile: path.join(temp.path, 'redis.log'),
    });
    current = proc;
    try {
      await proc.waitUntilReady(
        async () => (await tcpExchange(port, 'PING\r\n')).startsWith('+PONG'),
        options.startTimeoutMs ?? 10_000,
      );
    } catch (error) {
      await proc.kill();
      throw error;
    }
  };

  await startWithPortRetry(async () => {
    port = await freePort();
    await launch();
  }, looksLikePortClash);

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    process: () => current!,
    stop: async () => {
      await current?.stop();
    },
    restart: async () => {
      await current?.stop();
      await launch();
    },
    dispose: async () => {
      await current?.stop();
      await temp.remove();
    },
  };
}
