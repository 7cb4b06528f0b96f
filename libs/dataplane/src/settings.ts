import { z } from '@causeway/config';
import { DEFAULT_PATH_NORMALIZATION as PATH } from '@causeway/http';

/**
 * The `pathNormalization` setting of the proxies that route by path (sidecar, ingress
 * gateway): how request paths are normalized before routing and authorization; the
 * defaults refuse every ambiguous spelling.
 */
export const pathNormalizationSetting = z
  .object({
    escapedSlashes: z.enum(['reject', 'decode', 'keep']).default(PATH.escapedSlashes),
    backslash: z.enum(['reject', 'slash']).default(PATH.backslash),
    semicolons: z.enum(['reject', 'strip', 'keep']).default(PATH.semicolons),
    mergeSlashes: z.boolean().default(PATH.mergeSlashes),
    trailingDots: z.enum(['reject', 'keep']).default(PATH.trailingDots),
    encodedWhitespace: z.enum(['reject', 'inside']).default(PATH.encodedWhitespace),
  })
  .strict()
  .default({ ...PATH });
