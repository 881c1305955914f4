// Status changes leave the registry as events, published only after they are durable. The
// broker listens to close sessions, drop cached verdicts and recompute topic access; the
// fleet graph listens to stay in step. In a cluster the same events travel over Redis.
import type { DeviceId, Fingerprint, SerialHex } from './ids.js';
import type { CaStatus, CertificateStatus, ClaimBatchStatus, DeviceStatus, EnforcementMode, GrantStatus, IssuingState, StationStatus } from './model.js';

export type RegistryEvent =
  | { type: 'certificate.created'; serial: SerialHex; fingerprint: Fingerprint; deviceId: DeviceId; caId: string; status: CertificateStatus; at: string }
  | { type: 'certificate.status'; serial: SerialHex; fingerprint: Fingerprint; deviceId: DeviceId; caId: string; status: CertificateStatus; at: string; reason?: string }
  | { type: 'device.created'; deviceId: DeviceId; gateway: boolean; at: string }
  | { type: 'device.status'; deviceId: DeviceId; status: DeviceStatus; at: string; reason?: string }
  /** The device's gateway flag or its gateway changed: its topic access changes. */
  | { type: 'device.topology'; deviceId: DeviceId; gateway: boolean; gatewayId?: DeviceId; previousGatewayId?: DeviceId; at: string }
  | { type: 'group.membership'; groupId: string; deviceId: DeviceId; member: boolean; at: string }
  | { type: 'group.policy'; groupId: string; at: string }
  | { type: 'ca.created'; caId: string; parentId?: string; external: boolean; at: string }
  | { type: 'ca.status'; caId: string; status: CaStatus; at: string; reason?: string }
  /** A CA's policy (lifetimes, renewal) changed. */
  | { type: 'ca.policy'; caId: string; at: string }
  /** Enforcement switched for the listener (all devices) or for one group's members. */
  | { type: 'enforcement.changed'; scope: 'listener' | 'group'; groupId?: string; mode: EnforcementMode; at: string }
  | { type: 'grant.changed'; grantId: string; deviceId: DeviceId; status: GrantStatus; at: string }
  /** An issuing CA moved in rotation (prepared, activated, superseded, retired). */
  | { type: 'ca.rotation'; caId: string; state: IssuingState; at: string }
  | { type: 'claim_batch.status'; batchId: string; fingerprint: Fingerprint; caId: string; status: ClaimBatchStatus; at: string }
  /** A station's certificate changed status (revoked: it goes on its CA's CRL). */
  | { type: 'station.status'; name: string; caId: string; status: StationStatus; at: string; reason?: string };

export type EventHandler = (event: RegistryEvent) => void | Promise<void>;

export interface EventBus {
  /** Resolves once every event is handed to the bus (and, in process, handled). */
  publish(events: readonly RegistryEvent[]): Promise<void>;
  /** Returns the function that ends the subscription. */
  subscribe(handler: EventHandler): () => void;
  close(): Promise<void>;
}

/** Hands every event to every handler at once; settles when all have handled them. */
export async function deliver(handlers: Iterable<EventHandler>, events: readonly RegistryEvent[]): Promise<void> {
  const pending: Promise<void>[] = [];
  for (const event of events) {
    for (const handler of handlers) {
      const result = handler(event);
      if (result) pending.push(result);
    }
  }
  await Promise.all(pending);
}

/**
 * The single-process bus: publish resolves after every subscriber has handled every event,
 * so "published" also means "the broker has closed the sessions" here.
 */
export class InProcessEventBus implements EventBus {
  readonly #handlers = new Set<EventHandler>();

  publish(events: readonly RegistryEvent[]): Promise<void> {
    return deliver(this.#handlers, events);
  }

  subscribe(handler: EventHandler): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  close(): Promise<void> {
    this.#handlers.clear();
    return Promise.resolve();
  }
}
