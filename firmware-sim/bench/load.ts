// The same client load for every broker under test: connect the fleet over mutual TLS and
// hold the connections, drive telemetry at a fixed total rate into one reader (fan-in), and
// for our broker revoke devices one by one while the rest stay connected.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { ConnectionOptions } from 'node:tls';
import type { ApiClient } from '../api-client.js';
import { distribution, inPool, type Distribution } from '../stats.js';
import type { BenchDevice } from './fleet.js';

export interface Connected {
  device: BenchDevice;
  client: MqttClient;
  /** performance.now() when the broker closed this connection. */
  closedAt?: number;
}

/** One connection attempt; rejects with the CONNACK return code or the transport error. */
export function connectDevice(device: BenchDevice, url: string): Promise<Connected> {
  // mqtt.js hands its options to tls.connect, secureContext included.
  const options: IClientOptions & Pick<ConnectionOptions, 'secureContext'> = {
    clientId: device.id,
    secureContext: device.secureContext,
    protocolVersion: 4,
    clean: true,
    keepalive: 600,
    reconnectPeriod: 0,
    connectTimeout: 60_000,
  };
  const client = mqtt.connect(url, options);
  return new Promise((resolve, reject) => {
    const failed = (error: Error) => {
      client.end(true);
      reject(error);
    };
    client.once('error', failed);
    client.once('connect', () => {
      client.removeListener('error', failed);
      const connected: Connected = { device, client };
      client.on('error', () => undefined); // a later error ends in 'close'
      client.once('close', () => (connected.closedAt = performance.now()));
      resolve(connected);
    });
  });
}

/** Resolves with performance.now() when the broker closes this connection (at once if it has). */
export function closed(c: Connected): Promise<number> {
  if (c.closedAt !== undefined) return Promise.resolve(c.closedAt);
  return new Promise((resolve) => c.client.once('close', () => resolve(c.closedAt!)));
}

export async function connectAll(devices: readonly BenchDevice[], url: string, concurrency: number): Promise<{ connected: Connected[]; failures: Record<string, number> }> {
  const connected: Connected[] = [];
  const failures: Record<string, number> = {};
  await inPool(devices, concurrency, async (device) => {
    try {
      connected.push(await connectDevice(device, url));
    } catch (error) {
      const { code } = error as { code?: string | number };
      const reason = code === undefined ? (error as Error).message : String(code);
      failures[reason] = (failures[reason] ?? 0) + 1;
    }
  });
  return { connected, failures };
}

export async function disconnectAll(connections: readonly Connected[]): Promise<void> {
  await Promise.all(connections.map((c) => new Promise<void>((resolve) => c.client.end(false, {}, () => resolve()))));
}

export interface ReaderCount {
  received: number;
}

/** Subscribes the reader to every device's telemetry and counts what it receives. */
export async function startReading(reader: Connected): Promise<ReaderCount> {
  const count: ReaderCount = { received: 0 };
  reader.client.on('message', () => void count.received++);
  const granted = await reader.client.subscribeAsync('devices/+/telemetry', { qos: 0 });
  if (granted[0]?.qos !== 0) throw new Error(`the reader was refused devices/+/telemetry (granted ${JSON.stringify(granted)})`);
  return count;
}

const TICK_MS = 10;

/**
 * Publishes QoS 0 telemetry at `totalPerSecond` across all connections, round robin, from
 * one ticker (no timer per device), for `durationMs`; then waits for the reader to drain
 * (until nothing arrived for `quietMs`).
 */
export async function fanIn(connections: readonly Connected[], reader: ReaderCount, totalPerSecond: number, durationMs: number, quietMs = 500): Promise<{ published: number; received: number }> {
  const receivedBefore = reader.received;
  let published = 0;
  let next = 0;
  const started = performance.now();
  const payload = Buffer.alloc(64, 'x');
  await new Promise<void>((resolve) => {
    const ticker = setInterval(() => {
      const elapsed = performance.now() - started;
      const due = Math.min(Math.floor((elapsed / 1000) * totalPerSecond), Math.floor((durationMs / 1000) * totalPerSecond));
      for (; published < due; published++) {
        const c = connections[next++ % connections.length]!;
        c.client.publish(`devices/${c.device.id}/telemetry`, payload, { qos: 0 });
      }
      if (elapsed >= durationMs) {
        clearInterval(ticker);
        resolve();
      }
    }, TICK_MS);
  });
  // Let the last messages arrive (QoS 0: some may be dropped under overload; the count says).
  for (let quiet = 0, last = -1; quiet < quietMs / 100; await new Promise((r) => setTimeout(r, 100))) {
    quiet = reader.received === last ? quiet + 1 : 0;
    last = reader.received;
  }
  return { published, received: reader.received - receivedBefore };
}

export interface RevocationTimes {
  revoked: number;
  /** The devices revoked, by id: they can never connect again (REVOKED is terminal). */
  deviceIds: string[];
  closedBeforeAck: number;
  /** From sending the revocation to the device's connection closing. */
  requestToCloseMs: Distribution;
  /** From the API's acknowledgement to the close; negative when the close came first. */
  ackToCloseMs: Distribution;
}

/** Revokes each device in turn through the API and times how fast its session is closed. */
export async function revokeEach(api: ApiClient, connections: readonly Connected[]): Promise<RevocationTimes> {
  const requestToClose: number[] = [];
  const ackToClose: number[] = [];
  let closedBeforeAck = 0;
  for (const c of connections) {
    const closing = closed(c);
    const sent = performance.now();
    await api.revokeDevice(c.device.id, 'benchmark');
    const acked = performance.now();
    if (c.closedAt !== undefined) closedBeforeAck++;
    const at = await closing;
    requestToClose.push(at - sent);
    ackToClose.push(at - acked);
  }
  return { revoked: connections.length, deviceIds: connections.map((c) => c.device.id), closedBeforeAck, requestToCloseMs: distribution(requestToClose), ackToCloseMs: distribution(ackToClose) };
}

/**
 * The devices left to connect in the next round: the pool less those revoked. By id, not by
 * position: connections complete in whatever order the broker answers (connectAll runs many
 * at once), so the first connections revoked are not the pool's first devices.
 */
export function withoutRevoked<D extends { id: string }>(pool: readonly D[], revocation: Pick<RevocationTimes, 'deviceIds'> | undefined): D[] {
  const revoked = new Set(revocation?.deviceIds);
  return pool.filter((d) => !revoked.has(d.id));
}
