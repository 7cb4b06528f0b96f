import { z } from 'zod';

/** Units accepted in durations: `250ms`, `30s`, `90m`, `24h`, `365d`, and sums like `1h30m`. */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration to milliseconds; throws with the offending text when it is not one. */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (!/^(\d+(ms|s|m|h|d))+$/.test(trimmed)) {
    throw new Error(`'${text}' is not a duration (examples: 250ms, 30s, 90m, 24h, 365d, 1h30m)`);
  }
  let total = 0;
  for (const [, amount, unit] of trimmed.matchAll(/(\d+)(ms|s|m|h|d)/g))
    total += Number(amount) * UNIT_MS[unit!]!;
  if (!Number.isSafeInteger(total) || total <= 0) throw new Error(`'${text}' must be a positive duration`);
  return total;
}

/** A short readable form: `24h`, `1h30m`, `250ms`. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  const parts: string[] = [];
  let rest = Math.round(ms / 1_000);
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join('');
}

/** A settings field holding a duration (`500ms`, `2s`, `24h`), read as milliseconds. */
export const durationSetting = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .refine((text) => {
      try {
        parseDuration(text);
        return true;
      } catch {
        return false;
      }
    }, 'must be a duration such as 500ms, 2s, 24h')
    .transform((text) => parseDuration(text));
