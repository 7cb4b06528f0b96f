import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LocalFederation } from '@causeway/cli/local-federation';
import { startEnvironment, type Environment } from '@causeway/testing';

/** A NATS server and a two-cluster federation (`east`, `west`) in file mode, in a folder of its own. */
export interface TwoClusters {
  readonly federation: LocalFederation;
  /** Stops every process it started and removes its folder. */
  dispose(): Promise<void>;
}

/** Starts NATS and a federation of `east` and `west` with catalog timing short enough for tests. */
export async function startTwoClusters(name: string): Promise<TwoClusters> {
  let env: Environment | undefined;
  let federation: LocalFederation | undefined;
  const dir = await mkdtemp(path.join(os.tmpdir(), `causeway-${name}-`));
  const dispose = async () => {
    await federation?.stop();
    await env?.dispose();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    env = await startEnvironment({ nats: true });
    federation = await LocalFederation.start({
      dir,
      natsUrl: env.nats!.url,
      clusters: ['east', 'west'],
      heartbeatInterval: '500ms',
      workloadGrace: '1s',
    });
    return { federation, dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}
