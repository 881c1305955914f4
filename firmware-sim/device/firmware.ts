// One virtual device, behaving like firmware: it enrolls (through the API or by claim),
// connects over mutual TLS, keeps trying with backoff when the connection fails or drops,
// publishes telemetry, listens on its command topic, renews its certificate before it runs
// out (over its own session, over HTTPS with its certificate, or through the operator API),
// and gives up for good only when the broker says it is not authorized.
//
//   new → enrolling → connecting ⇄ backing_off
//                        ↓    ↑         ↑
//                      online ───drop───┘        any state → stopped (CONNACK 5), off (shut down)
//
// Everything a device shares with the fleet (timers, broker address, policies, where its
// figures go) comes in one environment object, so ten thousand devices hold only their own
// state: no timer, interval or options object of their own.
import mqtt, { type MqttClient } from 'mqtt';
import type { TimerHandle, Timers } from '../timers.js';
import { Backoff, type BackoffPolicy, type Random } from './backoff.js';
import { credentialsOf, type Credentials } from './credentials.js';
import type { Enroller, RenewalChannel, Renewer, RenewingDevice } from './issuance.js';
import { closeReason, connectOptions, refusalOf, TERMINAL_REFUSAL } from './mqtt-connect.js';
import { Outbox } from './outbox.js';
import { RenewalSchedule, type RenewalPolicy, type Validity } from './renewal.js';

export type DeviceState = 'new' | 'enrolling' | 'connecting' | 'online' | 'backing_off' | 'stopped' | 'off';

/** Where a device reports what happens to it; one object serves the whole fleet. */
export interface DeviceObserver {
  attempt(device: FirmwareDevice): void;
  connected(device: FirmwareDevice, latencyMs: number, reconnect: boolean): void;
  connectFailed(device: FirmwareDevice, reason: string, latencyMs: number): void;
  /** An established connection ended without the device ending it. */
  dropped(device: FirmwareDevice, at: number): void;
  stopped(device: FirmwareDevice, reason: string): void;
  published(device: FirmwareDevice, qos: 0 | 1): void;
  /** QoS 0: written to the socket; QoS 1: acknowledged by the broker. */
  completed(device: FirmwareDevice, latencyMs: number): void;
  renewed(device: FirmwareDevice, channel: RenewalChannel, latencyMs: number): void;
  renewalFailed(device: FirmwareDevice, channel: RenewalChannel, error: unknown): void;
  command(device: FirmwareDevice, topic: string): void;
}

/** What the gate needs of a device: whether it still wants its turn, and to take it. */
export interface Dialer {
  readonly wantsDial: boolean;
  dial(): void;
}

/** Connection attempts in flight are bounded fleet-wide; a device waits its turn here. */
export interface ConnectGate {
  enter(dialer: Dialer): void;
  /** An attempt that `dial` opened has ended, either way. */
  leave(): void;
}

export interface DeviceEnvironment {
  broker: { host: string; port: number };
  caPem: string;
  timers: Timers;
  random: Random;
  backoff: BackoffPolicy;
  renewal: RenewalPolicy;
  enroller: Enroller;
  /** How devices renew, unless a device is given its own renewer. */
  renewer: Renewer;
  gate: ConnectGate;
  observer: DeviceObserver;
  qos: 0 | 1;
  keepaliveSeconds: number;
  connectTimeoutMs: number;
}

/** What sets one device apart from the rest of the fleet. */
export interface DeviceOptions {
  /** A local address to connect from, when the fleet spreads over several. */
  localAddress?: string;
  /** How this device renews (the fleet's way by default). */
  renewer?: Renewer;
}

/** Topics the service answers requests on ($fleet/…): replies, never commands. */
const isServiceTopic = (topic: string) => topic.startsWith('$');

export class FirmwareDevice implements Dialer, RenewingDevice {
  state: DeviceState = 'new';
  credentials: Credentials | undefined;
  /** The serial of the first certificate, to tell whether the device has moved on from it. */
  firstSerial: string | undefined;
  readonly outbox = new Outbox();
  readonly telemetryTopic: string;
  stopReason: string | undefined;
  /** When the last established connection ended without the device ending it (timers' clock). */
  lastDropAt: number | undefined;
  /** Counters kept per device for the report's checks. */
  readonly counts = { attempts: 0, connects: 0, failures: 0, drops: 0, renewals: 0, commands: 0 };

  /** The serial of the certificate the live connection was opened with. */
  connectedSerial: string | undefined;
  #client: MqttClient | undefined;
  /** A connection with new credentials, while the old one still carries traffic. */
  #next: MqttClient | undefined;
  #switchWanted = false;
  #retry: TimerHandle | undefined;
  readonly #backoff: Backoff;
  readonly #renewal: RenewalSchedule;
  readonly #renewer: Renewer;
  readonly #localAddress: string | undefined;

  constructor(
    readonly id: string,
    private readonly env: DeviceEnvironment,
    options: DeviceOptions = {},
  ) {
    this.telemetryTopic = `devices/${id}/telemetry`;
    this.#localAddress = options.localAddress;
    this.#renewer = options.renewer ?? env.renewer;
    this.#backoff = new Backoff(env.backoff, env.random);
    this.#renewal = new RenewalSchedule(env.timers, env.renewal, () => this.#renew(), env.random, (error) => env.observer.renewalFailed(this, this.#renewer.channel, error));
  }

  get online(): boolean {
    return this.state === 'online';
  }

  /** The connection the device is online on, for requests on its own session (none while it switches to new credentials). */
  get session(): MqttClient | undefined {
    return this.state === 'online' && !this.#next ? this.#client : undefined;
  }

  /** How this device renews. */
  get renewalChannel(): RenewalChannel {
    return this.#renewer.channel;
  }

  /** When the next renewal is due, on the fleet's clock. */
  get renewalDueAt(): number | undefined {
    return this.#renewal.dueAt;
  }

  /** Makes a key, enrolls, and schedules the renewal of the certificate it got. */
  async enroll(): Promise<void> {
    this.state = 'enrolling';
    try {
      this.#install(credentialsOf(await this.env.enroller.enroll(this.id), this.env.caPem));
      this.firstSerial = this.credentials!.serial;
      this.state = 'new';
    } catch (error) {
      this.state = 'off';
      throw error;
    }
  }

  /** Starts connecting; from here on the device keeps itself connected. */
  start(): void {
    if (this.state !== 'new' || !this.credentials) throw new Error(`device ${this.id} cannot start from ${this.state}`);
    this.#connectSoon();
  }

  /** Whether the gate should still dial for this device when its turn comes. */
  get wantsDial(): boolean {
    return this.state === 'connecting' || (this.state === 'online' && this.#switchWanted);
  }

  /** Opens one connection attempt; called by the gate. */
  dial(): void {
    const switching = this.state === 'online';
    this.#switchWanted = false;
    this.counts.attempts++;
    this.env.observer.attempt(this);
    const started = this.env.timers.now();
    const serial = this.credentials!.serial;
    const client = mqtt.connect(
      connectOptions({
        broker: this.env.broker,
        clientId: this.id,
        secureContext: this.credentials!.secureContext,
        keepaliveSeconds: this.env.keepaliveSeconds,
        connectTimeoutMs: this.env.connectTimeoutMs,
        localAddress: this.#localAddress,
      }),
    );
    if (switching) this.#next = client;
    else this.#client = client;

    let refusal: string | undefined;
    client.on('error', (error: Error & { code?: unknown }) => (refusal ??= refusalOf(error)));
    client.once('connect', () => this.#onConnect(client, started, serial));
    client.once('close', () => {
      const elapsed = this.env.timers.now() - started;
      this.#onClose(client, closeReason(refusal, elapsed, this.env.connectTimeoutMs), elapsed);
    });
    client.on('message', (topic) => {
      if (client !== this.#client || isServiceTopic(topic)) return;
      this.counts.commands++;
      this.env.observer.command(this, topic);
    });
  }

  /** One reading, from the fleet's telemetry ticker. QoS 1 readings wait in the outbox while offline. */
  publishReading(): void {
    if (this.state === 'stopped' || this.state === 'off' || this.state === 'new' || this.state === 'enrolling') return;
    const t = this.env.timers.now();
    if (this.env.qos === 1) {
      const seq = this.outbox.add(t);
      this.env.observer.published(this, 1);
      if (this.state === 'online') this.#send(this.#client!, seq, t);
    } else if (this.state === 'online') {
      const seq = this.outbox.skip();
      this.env.observer.published(this, 0);
      this.#client!.publish(this.telemetryTopic, payloadOf(seq, t), { qos: 0 }, (error) => {
        if (!error) this.env.observer.completed(this, this.env.timers.now() - t);
      });
    }
  }

  /** Renews now instead of at two thirds of the lifetime (a rotation ordered from outside). */
  renewNow(): void {
    if (this.state !== 'stopped' && this.state !== 'off') this.#renewal.now();
  }

  /** Ends the connection abruptly, as a lost network would; the device then reconnects by itself. */
  dropConnection(): boolean {
    if (this.state !== 'online' || this.#next) return false;
    this.#client!.stream.destroy();
    return true;
  }

  /** Stops everything and disconnects cleanly. */
  async shutdown(): Promise<void> {
    if (this.state === 'off') return;
    // An attempt in flight holds a slot of the gate; its close will not be listened to any more.
    if (this.state === 'connecting' && this.#client) this.env.gate.leave();
    if (this.#next) this.env.gate.leave();
    this.state = 'off';
    this.#renewal.stop();
    this.#cancelRetry();
    const clients = [this.#client, this.#next].filter((c): c is MqttClient => c !== undefined);
    this.#client = this.#next = undefined;
    await Promise.all(clients.map((c) => new Promise<void>((resolve) => c.end(!c.connected, {}, () => resolve()))));
  }

  #install(credentials: Credentials): void {
    this.credentials = credentials;
    this.#renewal.schedule(credentials);
  }

  #connectSoon(): void {
    this.state = 'connecting';
    this.env.gate.enter(this);
  }

  #onConnect(client: MqttClient, started: number, serial: string): void {
    if (client === this.#next) {
      // The new credentials are in: the broker hands the session over and closes the old
      // connection, whose close is no drop.
      const old = this.#client;
      this.#client = client;
      this.#next = undefined;
      if (old) retire(old);
    } else if (client !== this.#client || this.state !== 'connecting') {
      retire(client);
      return;
    }
    this.env.gate.leave();
    this.#backoff.reset();
    const reconnect = this.counts.connects > 0;
    this.counts.connects++;
    this.state = 'online';
    this.connectedSerial = serial;
    this.env.observer.connected(this, this.env.timers.now() - started, reconnect);
    client.subscribe(`devices/${this.id}/commands/#`, { qos: 1 });
    for (const [seq, t] of this.outbox.pending()) this.#send(client, seq, t);
  }

  #onClose(client: MqttClient, reason: string, elapsed: number): void {
    if (this.state === 'off') return;
    if (client === this.#next) {
      // The switch to new credentials failed; the old connection still works.
      this.#next = undefined;
      this.env.gate.leave();
      this.#failed(reason, elapsed);
      if (this.state === 'online') this.#retryLater(() => this.#requestSwitch());
      return;
    }
    if (client !== this.#client) return;
    this.#client = undefined;
    if (this.state === 'connecting') {
      this.env.gate.leave();
      this.#failed(reason, elapsed);
      if (this.state === 'connecting') {
        this.state = 'backing_off';
        this.#retryLater(() => this.#connectSoon());
      }
    } else if (this.state === 'online') {
      if (this.#next) {
        // The old connection went first (most often: taken over by the new one); the attempt
        // with new credentials carries on as the device's connection.
        this.#client = this.#next;
        this.#next = undefined;
        this.state = 'connecting';
        return;
      }
      this.lastDropAt = this.env.timers.now();
      this.counts.drops++;
      this.state = 'backing_off';
      this.#cancelRetry();
      this.env.observer.dropped(this, this.lastDropAt);
      this.#retryLater(() => this.#connectSoon());
    }
  }

  #failed(reason: string, elapsed: number): void {
    this.counts.failures++;
    this.env.observer.connectFailed(this, reason, elapsed);
    if (reason === TERMINAL_REFUSAL) this.#stop(reason);
  }

  #stop(reason: string): void {
    this.state = 'stopped';
    this.stopReason = reason;
    this.#renewal.stop();
    this.#cancelRetry();
    const clients = [this.#client, this.#next];
    this.#client = this.#next = undefined;
    for (const c of clients) if (c) retire(c);
    this.env.observer.stopped(this, reason);
  }

  /** Runs `then` after the backoff's next wait, unless the device stopped or shut down meanwhile. */
  #retryLater(then: () => void): void {
    this.#retry = this.env.timers.at(this.env.timers.now() + this.#backoff.next(), () => {
      this.#retry = undefined;
      if (this.state === 'backing_off' || this.state === 'online') then();
    });
  }

  #cancelRetry(): void {
    if (this.#retry) this.env.timers.cancel(this.#retry);
    this.#retry = undefined;
  }

  #requestSwitch(): void {
    if (this.state !== 'online' || this.#next || this.#switchWanted) return;
    this.#switchWanted = true;
    this.env.gate.enter(this);
  }

  async #renew(): Promise<Validity> {
    const started = this.env.timers.now();
    const issued = await this.#renewer.renew(this);
    if (this.state === 'stopped' || this.state === 'off') return this.credentials!;
    this.credentials = credentialsOf(issued, this.env.caPem);
    this.counts.renewals++;
    this.env.observer.renewed(this, this.#renewer.channel, this.env.timers.now() - started);
    // Online: connect with the new credentials beside the old connection. Otherwise the next
    // attempt uses them anyway.
    if (this.state === 'online') {
      this.#cancelRetry();
      this.#requestSwitch();
    }
    return this.credentials;
  }

  #send(client: MqttClient, seq: number, t: number): void {
    const sent = this.env.timers.now();
    client.publish(this.telemetryTopic, payloadOf(seq, t), { qos: 1 }, (error) => {
      if (!error && this.outbox.ack(seq)) this.env.observer.completed(this, this.env.timers.now() - sent);
    });
  }
}

/** The telemetry message: its sequence number and when the reading was taken. */
export function payloadOf(seq: number, t: number): string {
  return `{"seq":${seq},"t":${Math.round(t)}}`;
}

/**
 * Ends a client the device no longer uses. Its listeners stay (mqtt.js has its own on the
 * same events); the device's handlers ignore any client that is not its current or next one.
 */
function retire(client: MqttClient): void {
  client.end(true);
}
