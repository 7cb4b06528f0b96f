/** Bounds on what one HTTP/1.1 message may make the parser hold or scan. */
export interface H1Limits {
  /** Bytes of a head, from the first byte of the start line through the empty line (Node: 16 KiB). */
  readonly maxHeadBytes: number;
  /** Field lines in a head, and again in a trailer section. */
  readonly maxHeaders: number;
  /** Bytes of one chunk-size line with its extensions and CRLF. */
  readonly maxChunkLineBytes: number;
  /** Bytes of a trailer section, through its final CRLF. */
  readonly maxTrailerBytes: number;
}

export const DEFAULT_H1_LIMITS: Readonly<H1Limits> = Object.freeze({
  maxHeadBytes: 16_384,
  maxHeaders: 100,
  maxChunkLineBytes: 4_096,
  maxTrailerBytes: 16_384,
});

/**
 * Limits with `overrides` applied over the defaults, checked once (each a positive safe
 * integer) and frozen. Throws a RangeError naming the field and value otherwise.
 */
export function createH1Limits(overrides: Partial<H1Limits> = {}): Readonly<H1Limits> {
  const limits = { ...DEFAULT_H1_LIMITS, ...overrides };
  for (const [field, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1)
      throw new RangeError(`H1Limits.${field} must be a positive integer (got ${String(value)})`);
  }
  return Object.freeze(limits);
}
