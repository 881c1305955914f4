// The backend side of telemetry: a service with its own identity, allowed by a group policy
// to read every device's telemetry and to send devices commands. It records which sequence
// numbers arrived from which device, so QoS 1 loss and duplicates are counted where a real
// consumer would see them.
import type { SecureContext } from 'node:tls';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { ApiClient } from './api-client.js';
import type { Enroller } from './device/issuance.js';
import { credentialsOf } from './device/credentials.js';
import { DeliveryLedger } from './device/outbox.js';
import { LatencyHistogram } from './histogram.js';
import type { Clock } from './timers.js';

export const TELEMETRY_FILTER = 'devices/+/telemetry';
export const COMMANDS_PATTERN = 'devices/+/commands/#';

export class TelemetryReader {
  readonly ledger = new DeliveryLedger();
  /** Reading taken (its `t`) → delivered here. */
  readonly delivery = new LatencyHistogram();
  readonly counts = { messages: 0, unreadable: 0, drops: 0, commandsSent: 0 };
  #client: MqttClient | undefined;
  #closing = false;

  private constructor(
    readonly id: string,
    private readonly secureContext: SecureContext,
    private readonly clock: Clock,
  ) {}

  /** Enrolls the reader and grants it the fleet's telemetry and command topics through a group. */
  static async enroll(api: ApiClient, enroller: Enroller, id: string, group: string, caPem: string, clock: Clock): Promise<TelemetryReader> {
    const credentials = credentialsOf(await enroller.enroll(id), caPem);
    await api.createGroup(group, { publish: [COMMANDS_PATTERN], subscribe: [TELEMETRY_FILTER] });
    await api.addGroupMember(group, id);
    return new TelemetryReader(id, credentials.secureContext, clock);
  }

  /** Connects and subscribes; rejects if the broker refuses either. */
  async connect(broker: { host: string; port: number }, qos: 0 | 1, connectTimeoutMs: number): Promise<void> {
    const options: IClientOptions & { secureContext: SecureContext } = {
      host: broker.host,
      port: broker.port,
      protocol: 'mqtts',
      clientId: this.id,
      secureContext: this.secureContext,
      protocolVersion: 4,
      clean: true,
      keepalive: 60,
      reconnectPeriod: 0,
      connectTimeout: connectTimeoutMs,
    };
    const client = mqtt.connect(options);
    this.#client = client;
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
      client.once('close', () => reject(new Error('the telemetry reader could not connect')));
    });
    client.on('error', () => undefined);
    client.on('close', () => {
      if (!this.#closing) this.counts.drops++;
    });
    client.on('message', (topic, payload) => this.#receive(topic, payload));
    const granted = await new Promise<number>((resolve, reject) =>
      client.subscribe(TELEMETRY_FILTER, { qos }, (error, grants) => (error ? reject(error) : resolve(grants?.[0]?.qos ?? 0x80))),
    );
    // A refused SUBSCRIBE is answered with 0x80 (MQTT 3.1.1 §3.9.3).
    if (granted === 0x80) throw new Error(`the broker refused the telemetry reader's subscription to ${TELEMETRY_FILTER}`);
  }

  /** Sends one command to a device, QoS 1. */
  sendCommand(deviceId: string, name: string): Promise<void> {
    const client = this.#client;
    if (!client?.connected) return Promise.reject(new Error('the telemetry reader is not connected'));
    this.counts.commandsSent++;
    return new Promise((resolve, reject) => client.publish(`devices/${deviceId}/commands/${name}`, '{}', { qos: 1 }, (error) => (error ? reject(error) : resolve())));
  }

  async close(): Promise<void> {
    this.#closing = true;
    const client = this.#client;
    if (client) await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
  }

  #receive(topic: string, payload: Buffer): void {
    this.counts.messages++;
    // devices/<id>/telemetry; ids hold no '/'.
    const deviceId = topic.slice(8, -10);
    let reading: { seq?: unknown; t?: unknown };
    try {
      reading = JSON.parse(payload.toString('utf8')) as { seq?: unknown; t?: unknown };
    } catch {
      this.counts.unreadable++;
      return;
    }
    if (typeof reading.seq !== 'number' || typeof reading.t !== 'number') {
      this.counts.unreadable++;
      return;
    }
    if (this.ledger.record(deviceId, reading.seq)) this.delivery.record(this.clock.now() - reading.t);
  }
}
