/** HTTP on the wire, shared by the sidecar and the ingress gateway: strict HTTP/1.1 framing and request-path normalization. */
export {
  DEFAULT_PATH_NORMALIZATION,
  normalizePath,
  type NormalizedPath,
  type PathNormalizationOptions,
  type PathRefusalCode,
} from './path.ts';
export { BodyTracker, type BodyProgress } from './h1-body.ts';
export type { H1Error, H1ErrorCode } from './h1-errors.ts';
export {
  HeadScan,
  headerValue,
  parseRequestHead,
  parseResponseHead,
  type BodyFraming,
  type HeadResult,
  type RequestHead,
  type ResponseHead,
} from './h1-head.ts';
export { createH1Limits, DEFAULT_H1_LIMITS, type H1Limits } from './h1-limits.ts';
export { H1WriteError, writeRequestHead, writeResponseHead } from './h1-write.ts';
