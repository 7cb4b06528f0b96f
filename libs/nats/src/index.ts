/**
 * The NATS adapters: KV buckets opened the safe way, the catalog bucket (`CatalogBus`, a
 * `CatalogFeed` for `CatalogSync`) and the connection's status (`NatsLink`).
 */
export { openBucket } from './buckets.ts';
export { CatalogBus } from './catalog-bus.ts';
export { NATS_MAX_PINGS_OUT, NATS_PING_INTERVAL_MS, NatsLink, type NatsCondition } from './link.ts';
