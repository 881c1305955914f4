// MQTT clients for tests: real mqtt.js over mutual TLS, no reconnects unless asked for.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

export interface Identity {
  id: string;
  keyPem: string;
  certPem: string;
}

export interface ConnectOutcome {
  client: MqttClient;
  /** 0 when admitted, else the CONNACK return code. */
  returnCode: number;
  /** Set when the connection failed below MQTT (no CONNACK at all). */
  error?: Error;
}

export function mqttOptions(port: number, ca: string, identity?: Partial<Identity>, extra: IClientOptions = {}): IClientOptions {
  return {
    host: '127.0.0.1',
    port,
    protocol: 'mqtts',
    ca,
    ...(identity?.keyPem ? { key: identity.keyPem } : {}),
    ...(identity?.certPem ? { cert: identity.certPem } : {}),
    clientId: identity?.id ?? 'anonymous',
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...extra,
  };
}

/** Connects and reports how it went, without throwing on refusal. */
export function tryConnect(options: IClientOptions): Promise<ConnectOutcome> {
  const client = mqtt.connect(options);
  return new Promise((resolve) => {
    const done = (outcome: Omit<ConnectOutcome, 'client'>) => {
      client.removeAllListeners('connect');
      client.removeAllListeners('error');
      client.on('error', () => undefined);
      resolve({ client, ...outcome });
    };
    client.once('connect', () => done({ returnCode: 0 }));
    client.once('error', (error: Error & { code?: number | string }) => {
      done(typeof error.code === 'number' ? { returnCode: error.code, error } : { returnCode: -1, error });
    });
  });
}

export async function connect(options: IClientOptions): Promise<MqttClient> {
  const outcome = await tryConnect(options);
  if (outcome.returnCode !== 0) {
    outcome.client.end(true);
    throw new Error(`connect refused with ${outcome.returnCode}: ${outcome.error?.message ?? ''}`);
  }
  return outcome.client;
}

export function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    if (client.disconnected || (!client.connected && !client.reconnecting)) return resolve();
    client.once('close', () => resolve());
  });
}

/** Subscribes and returns the SUBACK return codes in order (0x80 for a refused filter). */
export function subackCodes(client: MqttClient, filters: Record<string, { qos: 0 | 1 | 2 }>): Promise<number[]> {
  return new Promise((resolve, reject) =>
    client.subscribe(filters, (error, _granted, packet) => (packet ? resolve(packet.granted as number[]) : reject(error ?? new Error('no SUBACK')))),
  );
}

export function end(client: MqttClient): Promise<void> {
  return new Promise((resolve) => client.end(true, {}, () => resolve()));
}
