// The backend side of telemetry: a service with its own identity, allowed by a group policy
// to read every device's telemetry and to send devices commands. It records which sequence
// numbers arrived from which device, so QoS 1 loss and duplicates are counted where a real
// consumer would see them.
import type { SecureContext } from 'node:tls';
import type { MqttClient } from 'mqtt';
import type { ApiClient } from './api-client.js';
import type { Enroller } from './device/issuance.js';
import { credentialsOf } from './device/credentials.js';
import { connectOnce, endClient } from './device/mqtt-connect.js';
import { subscribeAll } from './device/mqtt-exchange.js';
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
    const client = await connectOnce({ broker, clientId: this.id, secureContext: this.secureContext, keepaliveSeconds: 60, connectTimeoutMs });
    this.#client = client;
    client.on('close', () => {
      if (!this.#closing) this.counts.drops++;
    });
    client.on('message', (topic, payload) => this.#receive(topic, payload));
    await subscribeAll(client, [TELEMETRY_FILTER], qos).catch((error: Error) => {
      throw new Error(`the broker refused the telemetry reader's subscription to ${TELEMETRY_FILTER}`, { cause: error });
    });
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
    if (this.#client) await endClient(this.#client);
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
