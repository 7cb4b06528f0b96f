import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Target } from './routing.ts';
import { UPSTREAM_FAILURE } from './responses.ts';
import type { UpstreamPool } from './upstreams.ts';

/** The inbound side answers a tunnel with this header when the service port now needs L7. */
export const L7_REQUIRED = 'x-causeway-l7-required';

/**
 * The outbound side opens a tunnel with this header set to `http/1.1` when it frames what it
 * carries as HTTP/1.1 exchanges, one at a time: an inbound port that needs L7 may then read
 * and authorize each request in it instead of refusing the tunnel.
 */
export const FRAMING = 'x-causeway-framing';

/**
 * With `FRAMING`, set to `1` by a caller that asks for each request in the tunnel to be
 * served on its own even where the port is L4 (the ingress gateway): the requests are read,
 * authorized and told their caller (`x-forwarded-client-cert`) as on an L7 port. The far side
 * says `1` in its `200` when it does so.
 */
export const PER_REQUEST = 'x-causeway-per-request';

/** Why a tunnel could not be opened; `next` says whether another target may be tried. */
export class TunnelRefused extends Error {
  constructor(
    message: string,
    /** The target could not be reached or its app refused: try the next one, eject this one. */
    readonly eject: boolean,
    /** The service port needs L7 at the other end: carry the connection per request instead. */
    readonly l7Required = false,
  ) {
    super(message);
  }
}

/**
 * Opens one HBONE tunnel: an HTTP/2 CONNECT stream to `authority` (the destination service
 * `hostname:port`) over the pooled mTLS session to `target`. Resolves with the stream once
 * the other side has connected to its app (200); rejects with TunnelRefused otherwise.
 */
export function openTunnel(
  pool: UpstreamPool,
  target: Target,
  authority: string,
  /** HTTP/1.1 exchanges framed by this side (see `FRAMING`), served one by one (`PER_REQUEST`). */
  framed: boolean | 'per-request' = false,
  /** How long the peer may take to answer (it connects to its app first). */
  timeoutMs = 15_000,
  /** How long a new session to the target may take to connect (TrafficPolicy `timeouts.connect`). */
  connectMs?: number,
): Promise<http2.ClientHttp2Stream> {
  return new Promise((resolve, reject) => {
    const pooled = pool.session(target, connectMs);
    let stream: http2.ClientHttp2Stream;
    try {
      stream = pooled.session.request(
        framed === 'per-request'
          ? { ':method': 'CONNECT', ':authority': authority, [FRAMING]: 'http/1.1', [PER_REQUEST]: '1' }
          : framed
            ? { ':method': 'CONNECT', ':authority': authority, [FRAMING]: 'http/1.1' }
            : { ':method': 'CONNECT', ':authority': authority },
      );
    } catch (error) {
      return reject(new TunnelRefused((error as Error).message, true));
    }
    let settled = false;
    const fail = (error: TunnelRefused): void => {
      if (settled) return;
      settled = true;
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(error);
    };
    stream.once('error', (error) => fail(new TunnelRefused(error.message, !pooled.connected)));
    stream.once('close', () =>
      fail(new TunnelRefused(`the tunnel closed unanswered (code ${stream.rstCode ?? 0})`, false)),
    );
    // A peer that never answers (hung, or its app never accepts): the next target is tried.
    const timer = setTimeout(
      () => fail(new TunnelRefused(`no answer to the tunnel within ${timeoutMs} ms`, true)),
      timeoutMs,
    );
    stream.once('close', () => clearTimeout(timer));
    stream.once('response', (headers) => {
      clearTimeout(timer);
      const status = Number(headers[':status']);
      // A peer that took no notice of `PER_REQUEST` (it does not say so in its 200) would
      // carry the requests as bytes: refused as a port that takes no framing from us.
      if (status === 200 && framed === 'per-request' && headers[PER_REQUEST] !== '1')
        return fail(new TunnelRefused('the far side does not serve requests one by one', false, true));
      if (status === 200) {
        settled = true;
        return resolve(stream);
      }
      if (headers[L7_REQUIRED])
        return fail(new TunnelRefused('the service port needs L7 there', false, true));
      fail(
        new TunnelRefused(
          `the tunnel was refused with ${status}${headers[UPSTREAM_FAILURE] ? ' (the app there is unreachable)' : ''}`,
          Boolean(headers[UPSTREAM_FAILURE]),
        ),
      );
    });
  });
}

/**
 * Carries bytes both ways between two streams until both directions have ended; a half
 * close is passed on (a FIN from one side ends the other side's writing), an error or
 * reset on either side tears down both. `done` runs once, when both are closed.
 */
export function splice(a: Duplex, b: Duplex, done: () => void): void {
  a.pipe(b);
  b.pipe(a);
  let closed = 0;
  const onClose = (): void => {
    if (++closed === 2) done();
  };
  const tearDown = (): void => {
    a.destroy();
    b.destroy();
  };
  a.once('error', tearDown);
  b.once('error', tearDown);
  a.once('close', () => {
    // A stream that closed before its write side finished cannot take more: stop the other.
    if (!b.destroyed && !b.writableFinished) b.destroy();
    onClose();
  });
  b.once('close', () => {
    if (!a.destroyed && !a.writableFinished) a.destroy();
    onClose();
  });
}
