// What the API's route modules are given: the services they call and little else.
import type { Registry as MetricsRegistry } from 'prom-client';
import type { Logger } from 'pino';
import type { Clock } from '../../registry/clock.js';
import type { FleetGraph } from '../../registry/graph.js';
import type { Ban, EnforcementMode, WouldRefuse } from '../../registry/model.js';
import type { Registry } from '../../registry/registry.js';
import type { Crls } from '../crl.js';
import type { ClaimProvisioning } from '../claims/service.js';
import type { CaRotator } from '../rotation.js';
import type { Provisioning } from '../service.js';

export interface ApiDeps {
  provisioning: Provisioning;
  claims: ClaimProvisioning;
  registry: Registry;
  graph: FleetGraph;
  crls: Crls;
  /** The current CA bundle, PEM. */
  caBundle: () => string;
  metrics: MetricsRegistry;
  /** Whether a device has a live session on the broker (on any node of a cluster). */
  presence: { isConnected(deviceId: string): boolean | Promise<boolean> };
  /** Whether this node should be given traffic: registry reachable, and in a cluster its bus connected and caught up. */
  readiness: () => Promise<{ ready: true } | { ready: false; code: 'bus_disconnected' | 'bus_catching_up' | 'registry_unreachable' }>;
  /** This node's name (a cluster has several). */
  node: string;
  /** The broker's operational state: enforcement, would-refusals, bans. */
  broker: BrokerAdmin;
  /** Reloads trust, the server certificate and operators' CRLs now. */
  reload: () => Promise<unknown>;
  /** Issuing-CA rotation: its slots and thresholds. */
  rotation: Pick<CaRotator, 'slots' | 'thresholds'>;
  /** The longest a break-glass grant may last. */
  breakGlassMaxMs: number;
  /** How long after its notAfter a certificate of this CA may still renew itself (0: never). */
  renewalWindowMs(caId: string): Promise<number>;
  /** The lifetime of device certificates under a CA whose policy sets none. */
  defaultCertificateLifetimeMs: number;
  clock: Clock;
  log: Logger;
}

export interface BrokerAdmin {
  enforcement: { listener: EnforcementMode; monitoredGroups: string[]; wouldRefuse(): WouldRefuse[] };
  abuse: { bans(): Ban[]; unban(clientId: string): number };
}
