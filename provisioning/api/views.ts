// The JSON shapes the API returns. Written out field by field so nothing stored (a PEM, a
// key hash) leaks into a response by accident.
import type { DeviceView } from '../../registry/lifecycle.js';
import type { AuditEntry, CaPolicy, CaRecord, CertificateRecord, ClaimBatch, Group, IssuingCa, Station } from '../../registry/model.js';
import type { IssuingSlots } from '../../registry/rotation.js';
import type { Thresholds } from '../rotation.js';
import type { Enrollment } from '../service.js';

export function certificateJson(c: CertificateRecord) {
  return {
    serial: c.serial,
    fingerprint: c.fingerprint,
    deviceId: c.deviceId,
    ca: c.caId,
    status: c.status,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    ...(c.revokedAt ? { revokedAt: c.revokedAt.toISOString() } : {}),
    ...(c.revocationReason ? { revocationReason: c.revocationReason } : {}),
  };
}

/** A certificate just issued: its record, the certificate and the chain above it. */
export function enrollmentJson(e: Enrollment) {
  return { ...certificateJson(e.record), certificate: e.certificatePem, chain: e.chainPem, ...(e.record.renewedFrom ? { renewedFrom: e.record.renewedFrom } : {}) };
}

/** A CA's policy, in seconds as the API takes it. */
export function policyJson(caId: string, p: CaPolicy, defaultLifetimeMs: number) {
  return {
    ca: caId,
    certificateLifetimeSeconds: (p.certificateLifetimeMs ?? defaultLifetimeMs) / 1000,
    renewalWindowSeconds: p.renewalWindowMs / 1000,
    renewalGraceSeconds: p.renewalGraceMs / 1000,
    requireNewKey: p.requireNewKey,
  };
}

export function deviceJson(view: DeviceView, connected: boolean) {
  const { device } = view;
  return {
    id: device.id,
    status: device.status,
    attributes: device.attributes,
    gateway: device.gateway,
    ...(device.gatewayId ? { gatewayId: device.gatewayId } : {}),
    ...(device.gateway ? { children: view.children } : {}),
    groups: view.groups,
    createdAt: device.createdAt.toISOString(),
    updatedAt: device.updatedAt.toISOString(),
    connected,
    certificates: view.certificates.map(certificateJson),
  };
}

const iso = (d: Date | undefined) => d?.toISOString();

/** Where an issuing CA is in rotation. */
export function issuingJson(i: IssuingCa) {
  return { ca: i.caId, state: i.state, generation: i.generation, preparedAt: iso(i.preparedAt), activatedAt: iso(i.activatedAt), supersededAt: iso(i.supersededAt), retiredAt: iso(i.retiredAt) };
}

/** The rotation slots: the CA that signs now, the one prepared to follow it, and their predecessors. */
export function rotationJson(slots: IssuingSlots, due: Thresholds) {
  return {
    current: issuingJson(slots.current),
    ...(slots.next ? { next: issuingJson(slots.next) } : {}),
    old: slots.old.map(issuingJson),
    retired: slots.retired.map(issuingJson),
    thresholds: { prepareNextAt: due.prepareAt.toISOString(), activateNextAt: due.activateAt.toISOString() },
  };
}

/** A CA as operators see it; the PEM is public (it is in the trust bundles anyway). */
export function caJson(c: CaRecord, issuing?: IssuingCa) {
  return {
    id: c.id,
    name: c.name,
    ...(c.parentId ? { parent: c.parentId } : {}),
    subject: c.subject,
    serial: c.serial,
    status: c.status,
    external: c.external,
    ...(c.external ? { unknownCertificates: c.unknownCertificates ?? 'refuse' } : {}),
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    ...(c.revokedAt ? { revokedAt: c.revokedAt.toISOString() } : {}),
    ...(issuing ? { rotation: issuingJson(issuing) } : {}),
    certificate: c.pem,
  };
}

export function groupJson(g: Group, members?: string[]) {
  return {
    id: g.id,
    description: g.description,
    policy: g.policy,
    createdAt: g.createdAt.toISOString(),
    updatedAt: g.updatedAt.toISOString(),
    ...(members ? { members } : {}),
  };
}

export function auditJson(e: AuditEntry) {
  return {
    id: e.id,
    at: e.at.toISOString(),
    actor: e.actor,
    action: e.action,
    subject: { type: e.subjectType, id: e.subjectId },
    ...(e.deviceId ? { deviceId: e.deviceId } : {}),
    ...(e.certificateSerial ? { certificate: e.certificateSerial } : {}),
    ...(e.reason ? { reason: e.reason } : {}),
    details: e.details,
  };
}

/** A claim batch; its certificate is public (every device of the batch holds it). */
export function claimBatchJson(b: ClaimBatch, counts?: { issued: number; registered: number }) {
  return {
    id: b.id,
    status: b.status,
    template: b.template,
    rateLimit: b.rateLimit,
    ...(b.hook ? { hook: b.hook } : {}),
    clientIdPrefix: `claim/${b.id}/`,
    ca: b.caId,
    serial: b.serial,
    fingerprint: b.fingerprint,
    notBefore: b.notBefore.toISOString(),
    notAfter: b.notAfter.toISOString(),
    createdAt: b.createdAt.toISOString(),
    ...(b.revokedAt ? { revokedAt: b.revokedAt.toISOString() } : {}),
    ...(b.revocationReason ? { revocationReason: b.revocationReason } : {}),
    ...(counts ? { certificates: counts } : {}),
    certificate: b.pem,
  };
}

export function stationJson(s: Station) {
  return {
    name: s.name,
    roles: s.roles,
    status: s.status,
    serial: s.serial,
    fingerprint: s.fingerprint,
    ca: s.caId,
    notBefore: s.notBefore.toISOString(),
    notAfter: s.notAfter.toISOString(),
    createdAt: s.createdAt.toISOString(),
    ...(s.revokedAt ? { revokedAt: s.revokedAt.toISOString() } : {}),
    ...(s.revocationReason ? { revocationReason: s.revocationReason } : {}),
  };
}
