/** HTTP on the wire, shared by the sidecar and the ingress gateway: strict HTTP/1.1 framing and request-path normalization. */
export {
  DEFAULT_PATH_NORMALIZATION,
  normalizePath,
  type NormalizedPath,
  type PathNormalizationOptions,
  type PathRefusalCode,
} from './path.ts';
