import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

export interface HttpProbeResult {
  readonly status: number;
  readonly body: string;
}

/** One GET with a short timeout; rejects on connection errors. */
export async function httpGet(
  url: string,
  options: { ca?: string | Buffer; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<HttpProbeResult> {
  const target = new URL(url);
  const client = target.protocol === 'https:' ? https : http;
  return await new Promise<HttpProbeResult>((resolve, reject) => {
    const request = client.get(
      target,
      { headers: options.headers, ca: options.ca, timeout: options.timeoutMs ?? 2_000 },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error(`GET ${url} timed out`)));
    request.on('error', reject);
  });
}

/** Sends `payload` on a fresh TCP connection and resolves with what arrives first. */
export async function tcpExchange(
  port: number,
  payload: string,
  host = '127.0.0.1',
  timeoutMs = 2_000,
): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const socket = net.connect({ port, host });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error('timed out')));
    socket.once('connect', () => socket.write(payload));
    socket.once('data', (data) => {
      resolve(data.toString('utf8'));
      socket.destroy();
    });
    socket.once('error', reject);
  });
}
