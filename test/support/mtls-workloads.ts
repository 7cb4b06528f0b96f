// Two kinds of test workloads that hold rotating Causeway certificates: an HTTPS server that
// answers with the caller's verified SPIFFE identity, and a client whose agent follows its
// certificate. Shared by the renewal and rotation tests.
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { WorkloadCredentials } from '@causeway/identity';
import { peerIdentity, type VerifiedIdentity } from '@causeway/pki';

/** An mTLS server whose certificate and trusted roots follow `onCredentials`. */
export class WorkloadServer {
  /** One identity per connection, in the order connections were made. */
  readonly identities: VerifiedIdentity[] = [];
  private server: https.Server | undefined;
  private credentials: WorkloadCredentials | undefined;
  private readonly perConnection = new WeakMap<object, VerifiedIdentity>();

  constructor(private readonly trustDomain: string) {}

  /** Pass to the renewer: existing connections keep their context, new handshakes get the new one. */
  readonly onCredentials = (credentials: WorkloadCredentials): void => {
    this.credentials = credentials;
    this.server?.setSecureContext({
      key: credentials.privateKeyPem,
      cert: credentials.certificateChainPem,
      ca: [...credentials.roots],
    });
  };

  async listen(): Promise<number> {
    const first = this.credentials;
    if (!first) throw new Error('start the renewer before the server');
    this.server = https.createServer(
      {
        key: first.privateKeyPem,
        cert: first.certificateChainPem,
        ca: [...first.roots],
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.3',
      },
      (req, res) => {
        // Verified once per connection: the peer cannot change within it.
        let identity = this.perConnection.get(req.socket);
        if (!identity) {
          identity = peerIdentity(req.socket as TLSSocket, {
            roots: this.credentials!.roots.map((pem) => new X509Certificate(pem)),
            trustDomain: this.trustDomain,
          });
          this.perConnection.set(req.socket, identity);
          this.identities.push(identity);
        }
        res.end(`${identity.spiffeId.uri} via ${identity.cluster}`);
      },
    );
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server!.close(resolve));
  }
}

/** A client whose keep-alive agent is replaced with each new certificate. */
export class WorkloadClient {
  private agent: https.Agent | undefined;

  /** Pass to the renewer: new connections present the new certificate, old ones finish their work. */
  readonly onCredentials = (credentials: WorkloadCredentials): void => {
    this.agent = new https.Agent({
      keepAlive: true,
      key: credentials.privateKeyPem,
      cert: credentials.certificateChainPem,
      ca: [...credentials.roots],
      // The server is identified by SPIFFE ID, not host name.
      checkServerIdentity: () => undefined,
    });
  };

  /** One GET; resolves with the failure text, or undefined when the body was `expected`. */
  call(port: number, expected: string): Promise<string | undefined> {
    return new Promise((resolve) => {
      const request = https.get({ host: '127.0.0.1', port, path: '/', agent: this.agent }, (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () =>
          resolve(
            response.statusCode === 200 && body === expected ? undefined : `${response.statusCode} ${body}`,
          ),
        );
      });
      request.on('error', (error) => resolve(error.message));
    });
  }
}

/** Requests `concurrency` at a time until `keepGoing()` is false; every outcome is counted. */
export async function runTraffic(options: {
  client: WorkloadClient;
  port: number;
  expected: string;
  keepGoing: () => boolean;
  concurrency?: number;
}): Promise<{ ok: number; failures: string[] }> {
  let ok = 0;
  const failures: string[] = [];
  while (options.keepGoing()) {
    const outcomes = await Promise.all(
      Array.from({ length: options.concurrency ?? 3 }, () =>
        options.client.call(options.port, options.expected),
      ),
    );
    for (const outcome of outcomes) {
      if (outcome === undefined) ok++;
      else failures.push(outcome);
    }
  }
  return { ok, failures };
}
