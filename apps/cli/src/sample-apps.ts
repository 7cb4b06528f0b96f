import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { WebSocketServer } from 'ws';

/** What a sample app answers: who it is, and who called it (as its sidecar said). */
export interface EchoReply {
  readonly service: string;
  readonly cluster: string;
  readonly instance: string;
  /** The caller's SPIFFE ID from `x-forwarded-client-cert`, if a sidecar set it. */
  readonly caller?: string;
  readonly path?: string;
  readonly traceparent?: string;
  readonly message?: string;
}

/** The caller's SPIFFE ID in an `x-forwarded-client-cert` header (`By=…;URI=…`). */
export function callerOf(header: string | string[] | undefined): string | undefined {
  const text = Array.isArray(header) ? header.at(-1) : header;
  return /(?:^|;)URI=([^;,]+)/.exec(text ?? '')?.[1];
}

export interface SampleApp {
  readonly port: number;
  /** Requests served so far. */
  served(): number;
  close(): Promise<void>;
}

/** Who a sample app is: what it answers in every {@link EchoReply}. */
export interface SampleIdentity {
  readonly service: string;
  readonly cluster: string;
  readonly instance: string;
}

/**
 * An HTTP/1.1 service that answers every request with an {@link EchoReply}, on `host` and
 * `port` (any free one by default).
 */
export async function startHttpEcho(
  identity: SampleIdentity,
  port = 0,
  host = '127.0.0.1',
): Promise<SampleApp> {
  let served = 0;
  const server = http.createServer((request, response) => {
    served++;
    // An answer without a body (`Content-Length: 0`).
    if (request.url === '/empty') return void response.end();
    const reply: EchoReply = {
      ...identity,
      ...(callerOf(request.headers['x-forwarded-client-cert'])
        ? { caller: callerOf(request.headers['x-forwarded-client-cert']) }
        : {}),
      path: request.url ?? '/',
      ...(request.headers.traceparent ? { traceparent: String(request.headers.traceparent) } : {}),
    };
    const body = JSON.stringify(reply);
    response.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    response.end(body);
  });
  // Kept-alive connections stay open for a minute, as apps behind a load balancer keep
  // them (Node's default is 5 s): a proxy's kept connection is not closed under it.
  server.keepAliveTimeout = 60_000;
  // A WebSocket upgrade on any path: each message is echoed with the instance that answered.
  const sockets = new WebSocketServer({ noServer: true });
  server.on('upgrade', (request, socket, head) =>
    sockets.handleUpgrade(request, socket, head, (ws) =>
      ws.on('message', (data) => ws.send(`${identity.instance}: ${String(data)}`)),
    ),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    served: () => served,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The sample service's schema, beside the sources and the bundle alike (apps/cli/proto). */
const ECHO_PROTO = fileURLToPath(new URL('../proto/causeway/demo/echo.proto', import.meta.url));

/** The loaded schema: fields as named in the .proto, empty ones left out (an unset `caller` is none). */
const echoDefinition = protoLoader.loadSync(ECHO_PROTO, { keepCase: true, defaults: false });

/**
 * The sample gRPC service (`apps/cli/proto/causeway/demo/echo.proto`, protobuf):
 * `causeway.demo.Echo/Say` (unary) and `causeway.demo.Echo/Chat` (bidirectional streaming:
 * each message is answered as it comes). Its servers answer reflection, so grpcurl and
 * other standard tools can call it without the .proto.
 */
export const ECHO_SERVICE: grpc.ServiceDefinition = (
  grpc.loadPackageDefinition(echoDefinition) as unknown as {
    causeway: { demo: { Echo: { service: grpc.ServiceDefinition } } };
  }
).causeway.demo.Echo.service;

/**
 * A gRPC (HTTP/2 cleartext) service that answers `Say` with an {@link EchoReply}, on `host`
 * and `port` (any free one by default).
 */
export async function startGrpcEcho(
  identity: SampleIdentity,
  port = 0,
  host = '127.0.0.1',
): Promise<SampleApp> {
  let served = 0;
  const server = new grpc.Server();
  server.addService(ECHO_SERVICE, {
    Say: (
      call: grpc.ServerUnaryCall<{ message?: string }, EchoReply>,
      callback: grpc.sendUnaryData<EchoReply>,
    ) => {
      served++;
      const caller = callerOf(call.metadata.get('x-forwarded-client-cert').map(String));
      callback(null, { ...identity, ...(caller ? { caller } : {}), message: call.request.message ?? '' });
    },
    Chat: (call: grpc.ServerDuplexStream<{ message?: string }, EchoReply>) => {
      served++;
      const caller = callerOf(call.metadata.get('x-forwarded-client-cert').map(String));
      call.on('data', (request: { message?: string }) =>
        call.write({ ...identity, ...(caller ? { caller } : {}), message: request.message ?? '' }),
      );
      call.on('end', () => call.end());
    },
  });
  new ReflectionService(echoDefinition).addToServer(server);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `${host.includes(':') ? `[${host}]` : host}:${port}`,
      grpc.ServerCredentials.createInsecure(),
      (error, bound) => (error ? reject(error) : resolve(bound)),
    ),
  );
  return {
    port: bound,
    served: () => served,
    close: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
}

/** A gRPC client of the sample service that dials a sidecar and names the service in `:authority`. */
export function grpcEchoClient(
  sidecarPort: number,
  authority: string,
  /** The channel's target (default the sidecar's port; a service name when grpc_proxy is set). */
  target = `127.0.0.1:${sidecarPort}`,
): {
  say(message: string, deadlineMs?: number): Promise<EchoReply>;
  /** A `Chat` stream: each `send` resolves with the answer to that message. */
  chat(): { send(message: string): Promise<EchoReply>; end(): void };
  close(): void;
} {
  const Client = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');
  const client = new Client(target, grpc.credentials.createInsecure(), {
    'grpc.default_authority': authority,
  });
  return {
    say: (message, deadlineMs = 5_000) =>
      new Promise((resolve, reject) => {
        (
          client as unknown as {
            Say(
              request: unknown,
              options: grpc.CallOptions,
              callback: (error: grpc.ServiceError | null, reply: EchoReply) => void,
            ): void;
          }
        ).Say({ message }, { deadline: Date.now() + deadlineMs }, (error, reply) =>
          error ? reject(error) : resolve(reply),
        );
      }),
    chat: () => {
      const call = (client as unknown as { Chat(): grpc.ClientDuplexStream<unknown, EchoReply> }).Chat();
      const waiting: Array<{ resolve: (reply: EchoReply) => void; reject: (error: Error) => void }> = [];
      call.on('data', (reply: EchoReply) => waiting.shift()?.resolve(reply));
      call.on('error', (error: Error) => {
        for (const waiter of waiting.splice(0)) waiter.reject(error);
      });
      return {
        send: (message) =>
          new Promise<EchoReply>((resolve, reject) => {
            waiting.push({ resolve, reject });
            call.write({ message });
          }),
        end: () => call.end(),
      };
    },
    close: () => client.close(),
  };
}
