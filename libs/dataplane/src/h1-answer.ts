import { BodyTracker, HeadScan, parseResponseHead, type BodyFraming } from '@causeway/http';

const EMPTY: Buffer = Buffer.alloc(0);

/** Where an answer's bytes go (the connection back to whoever asked). */
export interface AnswerSink {
  /** False: the sink is full, wait for its 'drain'. */
  write(chunk: Buffer): boolean;
}

/** What the bytes fed so far made of the answer. */
export type AnswerStep =
  /** Every byte was passed on; the answer goes on. */
  | { readonly kind: 'more' }
  /** The answer is complete; `excess` bytes came after its end (the connection cannot be reused). */
  | { readonly kind: 'done'; readonly excess: number }
  /** The final head's status is retried (`judge` said so): nothing of it was passed on. */
  | { readonly kind: 'retry'; readonly status: number }
  /** 101 (or a 2xx to CONNECT): the head was passed on, `rest` follows it; from here on, bytes both ways as they are. */
  | { readonly kind: 'tunnel'; readonly rest: Buffer }
  /** A malformed answer: nothing more may pass (`answered`: part of it already did). */
  | { readonly kind: 'error'; readonly reason: string; readonly answered: boolean };

const MORE: AnswerStep = Object.freeze({ kind: 'more' });

/**
 * One HTTP/1.1 answer read from a server's byte stream and passed on to a sink: heads parsed
 * by the strict parser (interim 1xx ones passed on too), the body followed by its framing so
 * that the end of the exchange is known exactly. The bytes pass as they came.
 */
export class H1Answer {
  /** The final answer's status (0 until its head came). */
  status = 0;
  /** Whether the connection may carry another exchange after this answer. */
  keepAlive = true;
  /** How the final answer's body ends (`close`: with the connection). */
  framing: BodyFraming['type'] = 'none';
  /**
   * A byte of the final answer (or of a tunnel's head) went to the sink: the request cannot
   * be sent again. Interim answers passed on do not count.
   */
  answered = false;
  /** An interim answer (1xx) was passed on. */
  interim = false;
  /** The sink said it is full on the last write. */
  backedUp = false;
  private head = EMPTY;
  private readonly scan = new HeadScan();
  private body: BodyTracker | undefined;

  private method = 'GET';
  /**
   * Asked with the final answer's status before any of it is passed on: true holds it back
   * (the request is tried again). Interim answers already passed on leave nothing to hold.
   */
  judge: ((status: number) => boolean) | undefined;

  constructor(private readonly sink: AnswerSink) {}

  /** Expects the answer to a new request (`method`: HEAD and CONNECT answers are framed differently). */
  start(method: string): void {
    this.method = method;
    this.status = 0;
    this.keepAlive = true;
    this.framing = 'none';
    this.answered = false;
    this.interim = false;
    this.backedUp = false;
    this.body = undefined;
    this.reset();
  }

  /** Starts over (the request is sent again elsewhere; nothing of this answer was passed on). */
  reset(): void {
    this.head = EMPTY;
    this.scan.reset();
  }

  feed(chunk: Buffer): AnswerStep {
    let data = chunk;
    while (!this.body) {
      const buffer = this.head.length === 0 ? data : Buffer.concat([this.head, data]);
      const parsed = parseResponseHead(buffer, 0, this.method, undefined, this.scan);
      if (parsed.kind === 'incomplete') {
        this.head = buffer;
        return MORE;
      }
      this.head = EMPTY;
      if (parsed.kind === 'error') return { kind: 'error', reason: parsed.reason, answered: this.answered };
      if (!parsed.tunnel && !parsed.interim && !this.answered && this.judge?.(parsed.status)) {
        this.scan.reset();
        return { kind: 'retry', status: parsed.status };
      }
      if (parsed.tunnel) {
        this.answered = true;
        this.status = parsed.status;
        this.pass(buffer.subarray(0, parsed.end));
        return { kind: 'tunnel', rest: buffer.subarray(parsed.end) };
      }
      this.pass(buffer.subarray(0, parsed.end));
      data = buffer.subarray(parsed.end);
      // An interim answer (100 Continue) passed on leaves the request free to be sent
      // again: the final answer is still to come (and may come from elsewhere).
      if (parsed.interim) {
        this.interim = true;
        continue;
      }
      this.answered = true;
      this.status = parsed.status;
      this.keepAlive = parsed.keepAlive;
      this.framing = parsed.body.type;
      this.body = new BodyTracker(parsed.body, undefined, 'response');
    }
    const progress = this.body.feed(data, 0);
    if ('error' in progress) return { kind: 'error', reason: progress.error.reason, answered: true };
    if (progress.consumed > 0)
      this.pass(progress.consumed === data.length ? data : data.subarray(0, progress.consumed));
    return progress.done ? { kind: 'done', excess: data.length - progress.consumed } : MORE;
  }

  /** The server's side ended: whether that completed the answer (a body framed by the close). */
  endedCleanly(): boolean {
    return this.body !== undefined && this.framing === 'close';
  }

  private pass(bytes: Buffer): void {
    this.backedUp = !this.sink.write(bytes);
  }
}
