// Table shapes as Kysely sees them. Times are epoch milliseconds and flags are 0/1 integers
// in every back end, so one query definition serves SQLite and PostgreSQL alike.
import type { Generated } from 'kysely';

export interface DevicesTable {
  id: string;
  status: string;
  attributes: string;
  /** 1 when the device is a gateway that speaks for child devices. */
  gateway: number;
  /** The gateway this device is a child of. */
  gateway_id: string | null;
  created_at: number;
  updated_at: number;
}

export interface CertificatesTable {
  serial: string;
  fingerprint: string;
  public_key_sha256: string;
  device_id: string;
  ca_id: string;
  not_before: number;
  not_after: number;
  status: string;
  pem: string;
  created_at: number;
  revoked_at: number | null;
  revocation_reason: string | null;
  renewed_from: string | null;
  predecessor_retires_at: number | null;
}

export interface CasTable {
  id: string;
  name: string;
  parent_id: string | null;
  subject: string;
  serial: string;
  key_id: string;
  pem: string;
  not_before: number;
  not_after: number;
  status: string;
  /** 1 for a CA an operator brought (no key here); 0 for one this service signs with. */
  external: number;
  /** For external CAs: what to do with an unknown certificate it signed. */
  unknown_certificates: string | null;
  created_at: number;
  revoked_at: number | null;
  revocation_reason: string | null;
}

export interface GroupsTable {
  id: string;
  description: string;
  policy: string;
  /** 'enforce' or 'monitor': whether its members' failed checks refuse or are only counted. */
  enforcement: string;
  created_at: number;
  updated_at: number;
}

export interface GroupMembersTable {
  group_id: string;
  device_id: string;
  created_at: number;
}

export interface RegistrationCodesTable {
  code: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

export interface AuditTable {
  id: Generated<number>;
  at: number;
  actor: string;
  action: string;
  subject_type: string;
  subject_id: string;
  /** The device the change concerns, if any: lets the log be filtered by device. */
  device_id: string | null;
  certificate_serial: string | null;
  reason: string | null;
  details: string;
}

export interface SightingsTable {
  id: Generated<number>;
  at: number;
  kind: string;
  fingerprint: string | null;
  device_id: string | null;
  client_id: string | null;
  details: string;
}

export interface OperatorsTable {
  name: string;
  token_sha256: string;
  roles: string;
  created_at: number;
  disabled_at: number | null;
}

export interface SettingsTable {
  key: string;
  value: string;
  updated_at: number;
}

export interface GrantsTable {
  id: string;
  device_id: string;
  /** The certificate the grant is for; absent: any non-revoked certificate the registry holds for the device. */
  fingerprint: string | null;
  /** The one refusal reason the grant lets pass. */
  waives: string;
  reason: string;
  duration_ms: number;
  requested_by: string;
  approved_by: string | null;
  created_at: number;
  approved_at: number | null;
  expires_at: number | null;
  closed_by: string | null;
  closed_at: number | null;
}

export interface ClaimBatchesTable {
  id: string;
  status: string;
  /** JSON: the ClaimTemplate. */
  template: string;
  /** JSON: the pre-provisioning hook, if the batch has one. */
  hook: string | null;
  /** JSON: { perSecond, burst }. */
  rate_limit: string;
  ca_id: string;
  serial: string;
  fingerprint: string;
  public_key_sha256: string;
  pem: string;
  not_before: number;
  not_after: number;
  created_at: number;
  revoked_at: number | null;
  revocation_reason: string | null;
}

export interface ClaimCertificatesTable {
  /** A certificate issued through a claim (in certificates, PENDING_ACTIVATION until registered). */
  serial: string;
  batch_id: string;
  device_id: string;
  /** JSON: the approved parameters, attributes and groups that registering applies. */
  binding: string;
  created_at: number;
  registered_at: number | null;
}

export interface IssuingCasTable {
  ca_id: string;
  /** prepared, active, old or retired. */
  state: string;
  generation: number;
  prepared_at: number | null;
  activated_at: number | null;
  superseded_at: number | null;
  retired_at: number | null;
}

export interface StationsTable {
  name: string;
  roles: string;
  status: string;
  serial: string;
  fingerprint: string;
  ca_id: string;
  not_before: number;
  not_after: number;
  pem: string;
  created_at: number;
  revoked_at: number | null;
  revocation_reason: string | null;
}

export interface CaPoliciesTable {
  ca_id: string;
  /** The CaPolicy as JSON: its fields change more often than the schema should. */
  policy: string;
  updated_at: number;
}

/** What a factory batch line produced, kept so a retried batch returns the same certificate. */
export interface BatchLinesTable {
  /** The caller and its Idempotency-Key, e.g. "station:line-1:shift-42". */
  request_id: string;
  /** The line's device id. */
  line_id: string;
  serial: string;
  created_at: number;
}

export interface RegistryDatabase {
  devices: DevicesTable;
  certificates: CertificatesTable;
  cas: CasTable;
  groups: GroupsTable;
  group_members: GroupMembersTable;
  registration_codes: RegistrationCodesTable;
  audit: AuditTable;
  sightings: SightingsTable;
  operators: OperatorsTable;
  settings: SettingsTable;
  grants: GrantsTable;
  claim_batches: ClaimBatchesTable;
  claim_certificates: ClaimCertificatesTable;
  issuing_cas: IssuingCasTable;
  stations: StationsTable;
  ca_policies: CaPoliciesTable;
  batch_lines: BatchLinesTable;
}
