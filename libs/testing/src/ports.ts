import { readFileSync } from 'node:fs';
import net from 'node:net';

/**
 * The first port of the kernel's ephemeral range (the ports outgoing connections and
 * `listen(0)` get): ports below it are never handed out on their own.
 */
function ephemeralStart(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 11_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

const LOWEST = 10_000;

/** Whether `port` can be listened on now (released again at once). */
function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/**
 * A free loopback TCP port for a server that starts later. It is drawn below the kernel's
 * ephemeral range, so no outgoing connection (of this test or of the processes it starts)
 * can take it in the meantime; only another process that picks ports the same way could,
 * by the same draw. The port is released before it is returned: callers retry a start that
 * fails to bind.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const high = ephemeralStart();
  for (let attempt = 0; attempt < 64; attempt++) {
    const port = LOWEST + Math.floor(Math.random() * (high - LOWEST));
    if (await bindable(port, host)) return port;
  }
  // (A crowded range: the kernel's choice, as before.)
  return await new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port assigned'));
      });
    });
  });
}

/** Several distinct free ports at once. */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort(host));
  return [...ports];
}
