// How the simulator's MQTT clients connect — devices, claim sessions, the backend reader —
// and how a failed attempt is named: one set of options (MQTT 3.1.1 over mutual TLS with a
// prepared SecureContext, no automatic reconnect: firmware decides when to try again) and
// one vocabulary of refusals, so every report counts them the same way.
import type { SecureContext } from 'node:tls';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

/** MQTT 3.1.1 CONNACK return codes (§3.2.2.3), by the names refusals are counted under. */
export const CONNACK_NAMES: Readonly<Record<number, string>> = Object.freeze({
  1: 'unacceptable_protocol_version',
  2: 'identifier_rejected',
  3: 'server_unavailable',
  4: 'bad_username_or_password',
  5: 'not_authorized',
});

/** The refusal after which a client never tries again: its identity (or claim) is no good any more. */
export const TERMINAL_REFUSAL = 'not_authorized';

export interface ConnectTarget {
  broker: { host: string; port: number };
  clientId: string;
  secureContext: SecureContext;
  keepaliveSeconds: number;
  connectTimeoutMs: number;
  /** A local address to connect from, when the fleet spreads over several. */
  localAddress?: string;
}

/**
 * mqtt.js hands its options to tls.connect, which takes the prepared context as it is.
 * Nagle's algorithm is off: with it, a small packet written while the previous one is still
 * unacknowledged (a PUBACK, then the next request) waits for the broker's delayed ACK, about
 * 40 ms — a figure of the client's socket, not of the service, in every latency measured.
 */
export function connectOptions(target: ConnectTarget): IClientOptions & { secureContext: SecureContext; localAddress?: string; noDelay: true } {
  return {
    noDelay: true,
    host: target.broker.host,
    port: target.broker.port,
    protocol: 'mqtts',
    clientId: target.clientId,
    secureContext: target.secureContext,
    ...(target.localAddress ? { localAddress: target.localAddress } : {}),
    protocolVersion: 4,
    clean: true,
    keepalive: target.keepaliveSeconds,
    reconnectPeriod: 0,
    connectTimeout: target.connectTimeoutMs,
    resubscribe: false,
  };
}

/** Why a connection attempt failed, as a code: the CONNACK name, or the socket's error code. */
export function refusalOf(error: Error & { code?: unknown }): string | undefined {
  if (typeof error.code === 'number') return CONNACK_NAMES[error.code] ?? `connack_${error.code}`;
  if (typeof error.code === 'string') return error.code;
  return undefined; // no code: the close that follows is classified by timing
}

/** The reason of an attempt that closed before CONNACK 0: what the error said, or how long it took. */
export function closeReason(refusal: string | undefined, elapsedMs: number, connectTimeoutMs: number): string {
  return refusal ?? (elapsedMs >= connectTimeoutMs ? 'connect_timeout' : 'socket_closed');
}

/** A connection attempt that ended before CONNACK 0, with its reason code. */
export class ConnectRefused extends Error {
  override readonly name = 'ConnectRefused';
  constructor(readonly code: string) {
    super(`connection refused: ${code}`);
  }
}

/**
 * One attempt: resolves with the connected client, or rejects with ConnectRefused once the
 * attempt has closed (so a refused client never lingers).
 */
export function connectOnce(target: ConnectTarget): Promise<MqttClient> {
  const client = mqtt.connect(connectOptions(target));
  const started = performance.now();
  let refusal: string | undefined;
  return new Promise<MqttClient>((resolve, reject) => {
    const onError = (error: Error & { code?: unknown }) => (refusal ??= refusalOf(error));
    const onClose = () => {
      client.off('error', onError);
      reject(new ConnectRefused(closeReason(refusal, performance.now() - started, target.connectTimeoutMs)));
    };
    client.on('error', onError);
    client.once('close', onClose);
    client.once('connect', () => {
      client.off('close', onClose);
      client.off('error', onError);
      // mqtt.js emits 'error' with no listener as an uncaught exception; the caller adds its own.
      client.on('error', () => undefined);
      resolve(client);
    });
  });
}

/** Ends a client and resolves once it is closed. `force`: without waiting for in-flight messages. */
export function endClient(client: MqttClient, force = false): Promise<void> {
  return new Promise((resolve) => client.end(force, {}, () => resolve()));
}
