/** The ingress gateway: Gateway API routing (HTTPRoute, GRPCRoute) onto the mesh. */
export { IngressGateway, hostOf, MAX_HEADER_FIELDS, type IngressOptions } from './gateway.ts';
export { RouteTable, type IngressRequest, type RouteDecision, type RouteEntry } from './route-table.ts';
export {
  applyHeaderEdit,
  changePath,
  compileFilters,
  redirectLocation,
  type RuleFilters,
} from './filters.ts';
export {
  limitsFor,
  RateLimiter,
  type Limit,
  type RateDecision,
  type RateLimiterOptions,
} from './rate-limit.ts';
