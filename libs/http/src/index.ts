/** HTTP on the wire, shared by the sidecar and the ingress gateway: strict HTTP/1.1 framing and request-path normalization. */
export { DEFAULT_PATH_NORMALIZATION, normalizePath, type PathNormalizationOptions } from './path.ts';
export { BodyTracker } from './h1-body.ts';
export {
  HeadScan,
  headerValue,
  parseRequestHead,
  parseResponseHead,
  type BodyFraming,
  type RequestHead,
} from './h1-head.ts';
export { writeRequestHead, writeResponseHead } from './h1-write.ts';
