import { X509Certificate } from 'node:crypto';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import type { WorkloadCredentials } from '@causeway/identity';
import { parseSpiffeId, spiffeIdOf } from '@causeway/pki';
import type { Target } from './routing.ts';

interface PooledSession {
  readonly session: http2.ClientHttp2Session;
  readonly credentials: WorkloadCredentials;
  /** The TLS handshake completed (the target was reachable). */
  connected: boolean;
  /** After a GOAWAY: the last stream the peer may have processed (later ones it did not). */
  lastStreamId?: number;
}

/** A connection (TCP and TLS handshake) not up by then is abandoned; the target counts as unreachable. */
const CONNECT_TIMEOUT_MS = 5_000;
/** Open sessions are checked this often with an HTTP/2 PING... */
const PING_INTERVAL_MS = 30_000;
/** ...and dropped when the answer takes longer than this (a peer that vanished without a FIN). */
const PING_TIMEOUT_MS = 10_000;

/**
 * Pooled, long-lived mTLS HTTP/2 sessions to other proxies, one per target (a local
 * endpoint, or a remote gateway and service name). TLS 1.3, ALPN `h2`, the chain checked by
 * OpenSSL against the bundle, and the server's SPIFFE ID against the identities the catalog
 * lists for the target. New credentials take effect for new sessions; sessions made with the
 * old ones finish their streams and close.
 */
export class UpstreamPool {
  private readonly sessions = new Map<string, PooledSession>();
  private readonly keepalive = setInterval(() => this.ping(), PING_INTERVAL_MS).unref();

  constructor(
    private readonly credentials: () => WorkloadCredentials,
    private readonly onEvent?: (message: string, fields: Record<string, unknown>) => void,
  ) {}

  /** Sessions open now. */
  size(): number {
    return this.sessions.size;
  }

  /** The session to `target`; a new one that does not connect within `connectMs` fails. */
  session(target: Target, connectMs = CONNECT_TIMEOUT_MS): PooledSession {
    const credentials = this.credentials();
    const existing = this.sessions.get(target.key);
    if (existing && !existing.session.closed && !existing.session.destroyed) {
      if (existing.credentials === credentials) return existing;
      existing.session.close();
    }
    const expected = new Set(target.identities);
    const trustDomain = parseSpiffeId(credentials.spiffeId).trustDomain;
    const session = http2.connect(`https://${target.host}:${target.port}`, {
      createConnection: () => {
        const socket = tls.connect({
          // Small frames go out at once (Nagle with delayed ACKs costs milliseconds per request).
          socket: net.connect({ host: target.host, port: target.port, noDelay: true }),
          ...(target.servername ? { servername: target.servername } : {}),
          key: credentials.privateKeyPem,
          cert: credentials.certificateChainPem,
          ca: [...credentials.roots],
          minVersion: 'TLSv1.3',
          ALPNProtocols: ['h2'],

          checkServerIdentity: (_host, certificate) => {
            // The SVID's shape first (one URI SAN, SPIFFE, this trust domain, not a CA), so that
            // a certificate naming a listed identity among others is refused in the handshake.
            let uri: string;
            try {
              const leaf = new X509Certificate(certificate.raw);
              if (leaf.ca) return new Error('the server certificate is a CA (basicConstraints CA=true)');
              uri = spiffeIdOf(leaf, trustDomain, 'the server certificate').uri;
            } catch (error) {
              return error as Error;
            }
            // No listed identity: nobody may answer (fail closed).
            if (!expected.has(uri))
              return new Error(
                `the server is ${uri}, not one of the identities the catalog lists (${[...expected].join(', ') || 'none'})`,
              );
            return undefined;
          },
        });
        return socket;
      },
      peerMaxConcurrentStreams: 1_000,
    });
    const pooled: PooledSession = { session, credentials, connected: false };
    const connectTimer = setTimeout(
      () => session.destroy(new Error(`no connection within ${connectMs / 1000} s`)),
      connectMs,
    ).unref();
    session.once('connect', () => {
      pooled.connected = true;
      clearTimeout(connectTimer);
    });
    session.once('close', () => clearTimeout(connectTimer));
    const forget = (): void => {
      if (this.sessions.get(target.key) === pooled) this.sessions.delete(target.key);
    };
    session.on('error', (error) => {
      this.onEvent?.('upstream session error', { target: target.key, err: error.message });
      forget();
    });
    session.on('goaway', (code, lastStreamId) => {
      pooled.lastStreamId = lastStreamId;
      if (code !== http2.constants.NGHTTP2_NO_ERROR)
        this.onEvent?.('upstream connection ended with an error (GOAWAY)', {
          target: target.key,
          code,
          lastStreamId,
        });
    });
    session.on('close', forget);
    session.on('goaway', forget);
    // An idle session does not keep the process alive (its PINGs are unref'd timers too).
    session.unref();
    this.sessions.set(target.key, pooled);
    return pooled;
  }

  /** Closes sessions to targets that are no longer in the config (their streams finish first). */
  retain(keys: ReadonlySet<string>): void {
    for (const [key, pooled] of this.sessions)
      if (!keys.has(key)) {
        pooled.session.close();
        this.sessions.delete(key);
      }
  }

  private ping(): void {
    for (const [key, pooled] of this.sessions) {
      if (!pooled.connected || pooled.session.destroyed) continue;
      const timer = setTimeout(() => {
        this.onEvent?.('upstream session dropped: no PING answer', { target: key });
        pooled.session.destroy(new Error(`no PING answer within ${PING_TIMEOUT_MS / 1000} s`));
      }, PING_TIMEOUT_MS).unref();
      try {
        pooled.session.ping(() => clearTimeout(timer));
      } catch {
        // Closing already.
        clearTimeout(timer);
      }
    }
  }

  close(): void {
    clearInterval(this.keepalive);
    for (const pooled of this.sessions.values()) pooled.session.close();
    this.sessions.clear();
  }
}
