/**
 * Waits between retries: doubling from `firstMs` up to `maxMs`, each drawn at random between
 * half and all of that step, so that many processes failing together (a controller's
 * sidecars after its restart, controllers after a NATS outage) do not retry in step.
 */
export class Backoff {
  private step: number;

  constructor(
    private readonly options: {
      readonly firstMs: number;
      readonly maxMs: number;
      /** A number in [0, 1) (tests pass a fixed one). */
      readonly random?: () => number;
    },
  ) {
    if (!(options.firstMs > 0) || !(options.maxMs >= options.firstMs))
      throw new RangeError(`backoff needs 0 < firstMs <= maxMs (got ${options.firstMs}, ${options.maxMs})`);
    this.step = options.firstMs;
  }

  /** The wait before the next try. */
  next(): number {
    const step = this.step;
    this.step = Math.min(step * 2, this.options.maxMs);
    return (step * (1 + (this.options.random ?? Math.random)())) / 2;
  }

  /** After a success: the next wait is short again. */
  reset(): void {
    this.step = this.options.firstMs;
  }

  /** The longest wait `next()` can return. */
  get maxMs(): number {
    return this.options.maxMs;
  }
}

/** `ms`, give or take `fraction` of it, drawn uniformly (periodic work spread across processes). */
export function jitter(ms: number, fraction: number, random: () => number = Math.random): number {
  return ms * (1 - fraction + 2 * fraction * random());
}
