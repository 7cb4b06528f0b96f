import type { ManagedProcess } from './managed-process.ts';
import type { TempDir } from './temp-dir.ts';

/**
 * A server process that can be stopped and started again with the same ports and data
 * (for restart tests), and disposed of with its folder.
 */
export class RestartableServer {
  private current: ManagedProcess | undefined;

  constructor(
    private readonly temp: TempDir,
    private readonly launch: () => Promise<ManagedProcess>,
  ) {}

  readonly start = async (): Promise<void> => {
    this.current = await this.launch();
  };

  /** The process now running (a new one after each restart). */
  readonly process = (): ManagedProcess => {
    if (!this.current) throw new Error('server not started');
    return this.current;
  };

  readonly stop = async (): Promise<void> => {
    await this.current?.stop();
  };

  readonly restart = async (): Promise<void> => {
    await this.stop();
    await this.start();
  };

  readonly dispose = async (): Promise<void> => {
    await this.stop();
    await this.temp.remove();
  };
}
