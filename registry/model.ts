// The registry's records. Statuses are closed unions; REVOKED and DECOMMISSIONED are terminal.
import type { DeviceId, Fingerprint, SerialHex } from './ids.js';

export type DeviceStatus = 'ACTIVE' | 'DISABLED' | 'DECOMMISSIONED';
export type CertificateStatus = 'PENDING_ACTIVATION' | 'ACTIVE' | 'INACTIVE' | 'REVOKED';
/** RETIRED: an issuing CA rotation superseded, once nothing active depended on it; trusted no more. */
export type CaStatus = 'ACTIVE' | 'RETIRED' | 'REVOKED';
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

/** A refusal monitor mode only recorded, as the broker reports it to operators. */
export interface WouldRefuse {
  /** A refusal reason of the broker's catalogue. */
  reason: string;
  clientId?: string;
  deviceId?: string;
  fingerprint?: string;
  lastPeer?: string;
  count: number;
  firstSeen: string;
  lastSeen: string;
}

/** A client id abuse control has banned for a while, as the broker reports it to operators. */
export interface Ban {
  clientId: string;
  /** The certificate fingerprint the ban applies to, or the address of a client without one. */
  identity: string;
  since: number;
  until: number;
}

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
  /** A claim is a claim session (claim batch / client id nonce), not yet a device. */
  kind: 'operator' | 'station' | 'device' | 'broker' | 'system' | 'claim';
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

export type SubjectType = 'device' | 'certificate' | 'ca' | 'group' | 'operator' | 'station' | 'grant' | 'broker' | 'claim_batch';

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

/** One parameter a claim template takes: a string, checked against `pattern` when given. */
export interface ClaimParameterSpec {
  /** A regular expression the whole value must match. */
  pattern?: string;
  /** Absent means required. */
  required?: boolean;
}

/**
 * How a claim batch turns a device's parameters into a device: its id, attributes and group
 * memberships. `${Name}` in `deviceId` and in string attribute values stands for a parameter.
 */
export interface ClaimTemplate {
  deviceId: string;
  parameters: Record<string, ClaimParameterSpec>;
  attributes: JsonObject;
  groups: string[];
}

/** The pre-provisioning webhook of a claim batch. */
export interface ClaimHook {
  url: string;
  timeoutMs: number;
}

export type ClaimBatchStatus = 'ACTIVE' | 'REVOKED';

/**
 * A production batch's claim: one short-lived certificate shared by every device of the
 * batch, which admits them to the claim topics only.
 */
export interface ClaimBatch {
  id: string;
  status: ClaimBatchStatus;
  template: ClaimTemplate;
  hook?: ClaimHook;
  /** create-from-csr and register requests per second (and in a burst) across the batch. */
  rateLimit: { perSecond: number; burst: number };
  /** The CA that signed the claim certificate. */
  caId: string;
  serial: SerialHex;
  fingerprint: Fingerprint;
  publicKeySha256: string;
  pem: string;
  notBefore: Date;
  notAfter: Date;
  createdAt: Date;
  revokedAt?: Date;
  revocationReason?: string;
}

/** A certificate issued through a claim, and what registering it will bind. */
export interface ClaimBinding {
  serial: SerialHex;
  batchId: string;
  deviceId: DeviceId;
  /** The parameters as approved (the hook may have overridden some). */
  parameters: Record<string, string>;
  attributes: JsonObject;
  groups: string[];
  createdAt: Date;
  registeredAt?: Date;
}

/**
 * Where an issuing CA is in rotation: prepared (trusted, signs nothing yet), active (the one
 * that signs), old (superseded, still trusted), retired (trusted no more).
 */
export type IssuingState = 'prepared' | 'active' | 'old' | 'retired';

export interface IssuingCa {
  caId: string;
  state: IssuingState;
  /** 1 for the first issuing CA, one more for each that followed. */
  generation: number;
  preparedAt?: Date;
  activatedAt?: Date;
  supersededAt?: Date;
  retiredAt?: Date;
}
