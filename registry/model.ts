// The registry's records. Statuses are closed unions; REVOKED and DECOMMISSIONED are terminal.
import type { DeviceId, Fingerprint, SerialHex } from './ids.js';

export type DeviceStatus = 'ACTIVE' | 'DISABLED' | 'DECOMMISSIONED';
export type CertificateStatus = 'PENDING_ACTIVATION' | 'ACTIVE' | 'INACTIVE' | 'REVOKED';
export type CaStatus = 'ACTIVE' | 'REVOKED';
/** What the broker does with an unknown certificate signed by an operator's own CA. */
export type UnknownCertificatePolicy = 'refuse' | 'register-pending' | 'register-active';

export type JsonObject = { [key: string]: unknown };

export interface Device {
  id: DeviceId;
  status: DeviceStatus;
  attributes: JsonObject;
  gateway: boolean;
  /** The gateway this device is a child of. */
  gatewayId?: DeviceId;
  createdAt: Date;
  updatedAt: Date;
}

export interface CertificateRecord {
  serial: SerialHex;
  fingerprint: Fingerprint;
  /** SHA-256 of the SubjectPublicKeyInfo: finds a key presented under two identities. */
  publicKeySha256: string;
  deviceId: DeviceId;
  caId: string;
  notBefore: Date;
  notAfter: Date;
  status: CertificateStatus;
  pem: string;
  createdAt: Date;
  revokedAt?: Date;
  revocationReason?: string;
  /** The certificate this one renewed, if it came from a renewal. */
  renewedFrom?: SerialHex;
  /**
   * While set, the certificate it renewed is still ACTIVE: it turns INACTIVE when this one is
   * first seen on a connection, or at this time (the renewal's grace period), whichever comes first.
   */
  predecessorRetiresAt?: Date;
}

/** What a CA's certificates live by. Absent fields take the service's defaults. */
export interface CaPolicy {
  /** Lifetime of the device certificates it issues (default: the service's, 30 days). */
  certificateLifetimeMs?: number;
  /** How long after notAfter a certificate may still renew itself (default 0: not at all). */
  renewalWindowMs: number;
  /** How long a renewed certificate stays ACTIVE if its successor is never seen (default 1 day). */
  renewalGraceMs: number;
  /** Whether a renewal must bring a new key (default: the same key may be certified again). */
  requireNewKey: boolean;
}

export interface CaRecord {
  id: string;
  name: string;
  parentId?: string;
  subject: string;
  serial: SerialHex;
  /** Subject key identifier, lowercase hex. */
  keyId: string;
  pem: string;
  notBefore: Date;
  notAfter: Date;
  status: CaStatus;
  /** An operator's CA: its key is not here, and it cannot sign through this service. */
  external: boolean;
  unknownCertificates?: UnknownCertificatePolicy;
  createdAt: Date;
  revokedAt?: Date;
  revocationReason?: string;
}

/** MQTT topic filters a group's members may use, beyond their own namespace. */
export interface TopicPolicy {
  publish: string[];
  subscribe: string[];
}

export type EnforcementMode = 'enforce' | 'monitor';

export interface Group {
  id: string;
  description: string;
  policy: TopicPolicy;
  enforcement: EnforcementMode;
  createdAt: Date;
  updatedAt: Date;
}

/** What the broker needs to decide on a CONNECT, read in one query. */
export interface AdmissionRecord {
  serial: SerialHex;
  fingerprint: Fingerprint;
  deviceId: DeviceId;
  certificateStatus: CertificateStatus;
  deviceStatus: DeviceStatus;
  notBefore: Date;
  notAfter: Date;
  /** The CA that issued it (its policies apply). */
  caId?: string;
  /** A renewal whose predecessor is still ACTIVE: seeing this certificate on a connection retires it. */
  renewalPending?: boolean;
}

/** Who did something: an operator token, a factory station, a device, the broker, the system itself. */
export interface Actor {
  kind: 'operator' | 'station' | 'device' | 'broker' | 'system';
  id: string;
}

export interface Operator {
  name: string;
  roles: string[];
  createdAt: Date;
  disabledAt?: Date;
}

export type StationStatus = 'ACTIVE' | 'REVOKED';

/**
 * A factory station: an identity of its own that calls the API over mutual TLS with a
 * client certificate issued to it, holding the roles it was given.
 */
export interface Station {
  name: string;
  roles: string[];
  status: StationStatus;
  serial: SerialHex;
  fingerprint: Fingerprint;
  caId: string;
  notBefore: Date;
  notAfter: Date;
  pem: string;
  createdAt: Date;
  revokedAt?: Date;
  revocationReason?: string;
}

/**
 * A break-glass grant: one device may pass one failed check for a while, once a second
 * operator approved it.
 */
export interface Grant {
  id: string;
  deviceId: DeviceId;
  fingerprint?: string;
  waives: string;
  reason: string;
  durationMs: number;
  requestedBy: string;
  approvedBy?: string;
  createdAt: Date;
  approvedAt?: Date;
  expiresAt?: Date;
  closedBy?: string;
  closedAt?: Date;
}

export type GrantStatus = 'PENDING' | 'ACTIVE' | 'EXPIRED' | 'CLOSED';

export function grantStatus(g: Grant, now: Date): GrantStatus {
  if (g.closedAt) return 'CLOSED';
  if (!g.approvedAt) return 'PENDING';
  return g.expiresAt && g.expiresAt.getTime() <= now.getTime() ? 'EXPIRED' : 'ACTIVE';
}

export type SubjectType = 'device' | 'certificate' | 'ca' | 'group' | 'operator' | 'station' | 'grant' | 'broker';

export interface AuditEntry {
  id: number;
  at: Date;
  actor: string;
  action: string;
  subjectType: SubjectType;
  subjectId: string;
  deviceId?: string;
  certificateSerial?: string;
  reason?: string;
  details: JsonObject;
}

export type AuditInput = Omit<AuditEntry, 'id' | 'at' | 'actor'>;

export type SightingKind = 'shared_certificate' | 'client_id_conflict';

/** Something the broker saw that an operator should look at, kept for the fleet report. */
export interface Sighting {
  id: number;
  at: Date;
  kind: SightingKind;
  fingerprint?: string;
  deviceId?: string;
  clientId?: string;
  details: JsonObject;
}
