import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { requireSystemServer } from './binaries.ts';
import { ManagedProcess, looksLikePortClash, startWithPortRetry } from './managed-process.ts';
import { freePorts } from './ports.ts';
import { httpGet } from './probe.ts';
import { RestartableServer } from './restartable-server.ts';
import { makeTempDir, type TempDir } from './temp-dir.ts';

export interface NatsOptions {
  /**
   * Extra nats-server configuration appended to the generated file (e.g. an
   * `authorization { users = [...] }` block). Ports, JetStream and the store dir are set.
   */
  readonly extraConfig?: string;
  readonly startTimeoutMs?: number;
}

/** A running nats-server with JetStream, on loopback. */
export interface NatsServer {
  /** Client URL, `nats://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** HTTP monitoring endpoint (`/varz`, `/jsz`, `/healthz`). */
  readonly monitorUrl: string;
  readonly dir: string;
  readonly process: () => ManagedProcess;
  /** Stops the server, keeping its JetStream store (for restart tests). */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same store. */
  restart(): Promise<void>;
  /** Stops the server and deletes its store. */
  dispose(): Promise<void>;
}

export async function startNats(options: NatsOptions = {}): Promise<NatsServer> {
  const binary = requireSystemServer('nats-server');
  const temp: TempDir = await makeTempDir('nats');
  const timeout = options.startTimeoutMs ?? 15_000;
  let ports: number[] = [];
  const server = new RestartableServer(temp, async () => {
    const [port, monitor] = ports as [number, number];
    const configFile = path.join(temp.path, 'nats.conf');
    await writeFile(
      configFile,
      [
        `host: 127.0.0.1`,
        `port: ${port}`,
        `http: "127.0.0.1:${monitor}"`,
        `server_name: causeway-test-${port}`,
        `jetstream { store_dir: "${path.join(temp.path, 'jetstream')}" }`,
        options.extraConfig ?? '',
      ].join('\n'),
    );
    return await ManagedProcess.startReady(
      {
        name: 'nats-server',
        command: binary,
        args: ['-c', configFile],
        logFile: path.join(temp.path, 'nats.log'),
      },
      async () => (await httpGet(`http://127.0.0.1:${monitor}/healthz`)).status === 200,
      timeout,
    );
  });

  await startWithPortRetry(async () => {
    ports = await freePorts(2);
    await server.start();
  }, looksLikePortClash);

  const [port, monitor] = ports as [number, number];
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    monitorUrl: `http://127.0.0.1:${monitor}`,
    dir: temp.path,
    process: server.process,
    stop: server.stop,
    restart: server.restart,
    dispose: server.dispose,
  };
}
