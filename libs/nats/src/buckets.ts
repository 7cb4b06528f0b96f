import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

/** A KV bucket as Causeway opens it, and whether it refuses what could erase it. */
export interface OpenedBucket {
  readonly kv: KV;
  /** Rollup headers, purges and message deletes are refused by the bucket's stream. */
  readonly hardened: boolean;
  /** Why it is not hardened, when it is not. */
  readonly reason?: string;
}

/** A stream's configuration, as far as opening a bucket reads it. */
interface StreamConfig {
  readonly allow_direct?: boolean;
  readonly allow_rollup_hdrs?: boolean;
  readonly deny_purge?: boolean;
  readonly deny_delete?: boolean;
  readonly [field: string]: unknown;
}

/** What a JetStream stream API request answers. */
type ApiAnswer = {
  error?: { code?: number; err_code?: number; description?: string };
  config?: StreamConfig;
};
/** JetStream's error code for "stream not found". */
const STREAM_NOT_FOUND = 10_059;

const api = async (connection: NatsConnection, subject: string, body?: unknown): Promise<ApiAnswer> =>
  (
    await connection.request(subject, body === undefined ? '' : JSON.stringify(body), { timeout: 5_000 })
  ).json<ApiAnswer>();

const isHardened = (config: StreamConfig): boolean =>
  !config.allow_rollup_hdrs && config.deny_purge === true && config.deny_delete === true;

/**
 * The stream of a KV bucket as the KV client would make it (one subject per key under
 * `$KV.<bucket>.`, `history` values per key, new writes refused rather than old ones
 * dropped when full, direct gets), but refusing rollup headers, purges and message deletes.
 */
const safeBucketStream = (stream: string, bucket: string, history: number) => ({
  name: stream,
  subjects: [`$KV.${bucket}.>`],
  retention: 'limits',
  max_msgs_per_subject: history,
  max_msg_size: -1,
  storage: 'file',
  discard: 'new',
  num_replicas: 1,
  allow_direct: true,
  allow_rollup_hdrs: false,
  deny_purge: true,
  deny_delete: true,
});

/**
 * Opens a KV bucket. A bucket that does not exist yet is created safe, in the one request
 * that creates it (a crash cannot leave it half made): its stream refuses rollup headers
 * (one put with `Nats-Rollup: all` would empty it), purges and message deletes, for good
 * (NATS never lifts `deny_purge` or `deny_delete`). Key deletes (tombstones) stay possible;
 * controllers repair those. An existing bucket is used as it is, unless `harden` (what
 * `causeway nats-init` asks, as the operator): a cluster user may not change streams.
 */
export async function openBucket(
  connection: NatsConnection,
  bucket: string,
  history: number,
  options: { harden?: boolean } = {},
): Promise<OpenedBucket> {
  const stream = `KV_${bucket}`;
  const read = () => api(connection, `$JS.API.STREAM.INFO.${stream}`);
  let answer = await read();
  let existed = true;
  if (answer.error?.err_code === STREAM_NOT_FOUND) {
    answer = await api(
      connection,
      `$JS.API.STREAM.CREATE.${stream}`,
      safeBucketStream(stream, bucket, history),
    );
    const refused = answer.error;
    existed = refused !== undefined;
    // Made by another process meanwhile: theirs is used, as any existing bucket.
    if (refused) {
      answer = await read();
      if (answer.error?.err_code === STREAM_NOT_FOUND)
        throw new Error(`cannot create bucket ${bucket}: ${refused.description ?? 'refused'}`);
    }
  }
  const config = answer.config;
  if (answer.error || !config)
    throw new Error(
      `cannot open bucket ${bucket}: ${answer.error?.description ?? 'no stream configuration'}`,
    );
  const kv = await new Kvm(connection).open(bucket, { allow_direct: config.allow_direct === true });
  if (isHardened(config)) return { kv, hardened: true };
  if (existed && !options.harden)
    return { kv, hardened: false, reason: 'it existed before and allows rollups, purges or deletes' };
  try {
    const answer = await api(connection, `$JS.API.STREAM.UPDATE.${stream}`, {
      ...config,
      allow_rollup_hdrs: false,
      deny_purge: true,
      deny_delete: true,
    });
    if (answer.error) return { kv, hardened: false, reason: answer.error.description ?? 'refused' };
    return { kv, hardened: true };
  } catch (error) {
    return { kv, hardened: false, reason: (error as Error).message };
  }
}
