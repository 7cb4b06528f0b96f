import type { NatsConnection } from '@nats-io/transport-node';
import { Gauge, type Registry } from 'prom-client';

/** The controller's NATS connection as its status reports it. */
export interface NatsCondition {
  readonly connected: boolean;
  /** `Connected`, `Connecting`, `ConnectFailed`, `Disconnected`, `Stale`, `Closed` or `NotConfigured`. */
  readonly reason: string;
  readonly message: string;
  /** When `connected` last changed (ISO 8601). */
  readonly since: string;
}

/**
 * How long the client waits between PINGs, and how many may go unanswered: a server that
 * hangs (its process stopped, the network dropping packets) counts as lost within about
 * 3 x 2 s. A server that exits is noticed at once (its connection closes).
 */
export const NATS_PING_INTERVAL_MS = 2_000;
export const NATS_MAX_PINGS_OUT = 3;

/**
 * The state of the controller's NATS connection, as `/debug/catalog`, `causeway status` and
 * the `causeway_nats_connected` metric report it: taken from the client's status events
 * (disconnect, stale connection, reconnect, close), never from whether a connection object
 * exists.
 */
export class NatsLink {
  private state: NatsCondition;
  private readonly gauge: Gauge;

  constructor(registry: Registry, url: string | undefined) {
    this.gauge = new Gauge({
      name: 'causeway_nats_connected',
      help: '1 while the controller is connected to NATS, 0 otherwise (see causeway status for why)',
      registers: [registry],
    });
    this.state = url
      ? condition(false, 'Connecting', `connecting to ${url}`)
      : condition(false, 'NotConfigured', 'no nats.url in the settings');
    this.gauge.set(0);
  }

  /** The condition now. */
  condition(): NatsCondition {
    return this.state;
  }

  /** A connection was made: follows its status until it closes. */
  follow(connection: NatsConnection): void {
    this.set(true, 'Connected', `connected to ${connection.getServer()}`);
    void (async () => {
      for await (const status of connection.status()) {
        switch (status.type) {
          case 'disconnect':
            // The client drops a stale connection itself: the reason stays the one that says why.
            if (this.state.reason !== 'Stale')
              this.set(false, 'Disconnected', `lost the connection to ${status.server}; reconnecting`);
            break;
          case 'staleConnection':
            this.set(false, 'Stale', `the server left ${NATS_MAX_PINGS_OUT} PINGs unanswered; reconnecting`);
            break;
          case 'reconnect':
            this.set(true, 'Connected', `reconnected to ${status.server}`);
            break;
          case 'close':
            this.set(false, 'Closed', 'the connection was closed');
            break;
          default:
            break;
        }
      }
    })();
  }

  /** The connection attempt failed (it is retried). */
  failed(message: string): void {
    this.set(false, 'ConnectFailed', message);
  }

  private set(connected: boolean, reason: string, message: string): void {
    // The time of the last change of `connected`, not of every event.
    const since = connected === this.state.connected ? this.state.since : new Date().toISOString();
    this.state = { connected, reason, message, since };
    this.gauge.set(connected ? 1 : 0);
  }
}

const condition = (connected: boolean, reason: string, message: string): NatsCondition => ({
  connected,
  reason,
  message,
  since: new Date().toISOString(),
});
