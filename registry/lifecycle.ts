// Devices and their certificates: creation, enrollment records and every status change,
// each one audited and announced.
import type { Change, Changes } from './changes.js';
import { RegistryError } from './errors.js';
import type { RegistryEvent } from './events.js';
import type { DeviceId, Fingerprint, SerialHex } from './ids.js';
import type { Actor, CaRecord, CertificateRecord, CertificateStatus, Device, DeviceStatus, JsonObject } from './model.js';
import { batchKeyOf, type BatchKey } from './queries/batches.js';
import type { RegistryQueries, RegistryStore } from './store.js';
import { certificateMove, deviceMove } from './transitions.js';

export type NewCertificate = Omit<CertificateRecord, 'status' | 'createdAt' | 'revokedAt' | 'revocationReason'>;

export interface CertificateToRecord {
  certificate: NewCertificate;
  /** Register the device if the registry does not know it (a factory batch line). */
  createDevice?: boolean;
  /** The batch request and line it answers: the same key always answers with the same certificate. */
  batch?: BatchKey;
  /** More to say in its audit entry (where its key came from, say). */
  auditDetails?: JsonObject;
}

export interface DeviceView {
  device: Device;
  certificates: CertificateRecord[];
  groups: string[];
  children: DeviceId[];
}

export function certificateEvent(c: Pick<CertificateRecord, 'serial' | 'fingerprint' | 'deviceId' | 'caId'>, status: CertificateStatus, iso: string, reason?: string): RegistryEvent {
  return { type: 'certificate.status', serial: c.serial, fingerprint: c.fingerprint, deviceId: c.deviceId, caId: c.caId, status, at: iso, reason };
}

export class Lifecycle {
  constructor(
    private readonly store: RegistryStore,
    private readonly changes: Changes,
  ) {}

  async createDevice(input: { id: DeviceId; attributes?: JsonObject; gateway?: boolean }, actor: Actor): Promise<Device> {
    return this.changes.run(actor, async ({ tx, at, iso, audit, announce }) => {
      const device: Device = { id: input.id, status: 'ACTIVE', attributes: input.attributes ?? {}, gateway: input.gateway ?? false, createdAt: at, updatedAt: at };
      if (!(await tx.devices.insert(device))) throw new RegistryError('device_exists', input.id);
      audit({ action: 'device.created', subjectType: 'device', subjectId: device.id, deviceId: device.id, details: { attributes: device.attributes, gateway: device.gateway } });
      announce({ type: 'device.created', deviceId: device.id, gateway: device.gateway, at: iso });
      return device;
    });
  }

  async deviceView(id: DeviceId): Promise<DeviceView> {
    const device = await this.store.devices.get(id);
    if (!device) throw new RegistryError('device_not_found', id);
    const [certificates, groups, children] = await Promise.all([this.store.certificates.ofDevice(id), this.store.groups.of(id), this.store.devices.children(id)]);
    return { device, certificates, groups: groups.map((g) => g.id), children };
  }

  certificate(serial: SerialHex): Promise<CertificateRecord | undefined> {
    return this.store.certificates.bySerial(serial);
  }

  /** The certificate each batch key already produced, if any (one query for many keys). */
  async batchCertificates(keys: readonly BatchKey[]): Promise<(CertificateRecord | undefined)[]> {
    const serials = await this.store.batches.serials(keys);
    return Promise.all(keys.map(async (k) => {
      const serial = serials.get(batchKeyOf(k));
      return serial ? this.store.certificates.bySerial(serial) : undefined;
    }));
  }

  certificateByFingerprint(fingerprint: Fingerprint): Promise<CertificateRecord | undefined> {
    return this.store.certificates.byFingerprint(fingerprint);
  }

  async device(id: DeviceId): Promise<Device> {
    const device = await this.store.devices.get(id);
    if (!device) throw new RegistryError('device_not_found', id);
    return device;
  }

  /** Is the device there and allowed new certificates? Checked first, before any CSR work. */
  assertEnrollable(deviceId: DeviceId): Promise<Device> {
    return enrollableDevice(this.store, deviceId);
  }

  /** assertEnrollable for many devices in one query: the refusal for each, or undefined. */
  async enrollmentRefusals(deviceIds: readonly DeviceId[]): Promise<(RegistryError | undefined)[]> {
    const devices = await this.store.devices.getMany(deviceIds);
    return deviceIds.map((id) => enrollmentRefusal(devices.get(id), id));
  }

  async recordCertificate(certificate: NewCertificate, actor: Actor, status: CertificateStatus = 'ACTIVE'): Promise<CertificateRecord> {
    const [outcome] = await this.recordCertificates([certificate], actor, status);
    if (outcome instanceof RegistryError) throw outcome;
    return outcome!;
  }

  /**
   * Records freshly signed certificates in one transaction: the unit of group commit, which
   * is what lets issuance keep pace with a factory line. Each is checked on its own (device
   * still enrollable, key not another's, CA not revoked meanwhile); one that fails gets its
   * error in its place and the others are recorded all the same.
   */
  async recordCertificates(certificates: readonly NewCertificate[], actor: Actor, status: CertificateStatus = 'ACTIVE'): Promise<(CertificateRecord | RegistryError)[]> {
    return this.recordIssued(certificates.map((certificate) => ({ certificate })), actor, status);
  }

  /**
   * recordCertificates, with what a factory batch line adds: its device is registered if the
   * registry does not know it yet, and its batch key makes a retry idempotent. A line whose key
   * already produced a certificate (in an earlier attempt, earlier in this group, or in a
   * transaction that committed first) gets that certificate back and records nothing new.
   */
  async recordIssued(items: readonly CertificateToRecord[], actor: Actor, status: CertificateStatus = 'ACTIVE'): Promise<(CertificateRecord | RegistryError)[]> {
    if (items.length === 0) return [];
    return this.changes.run(actor, async ({ tx, at, iso, audit, announce }) => {
      // Checked again inside the transaction: the device or CA may have changed while signing.
      const devices = await tx.devices.getMany(items.map((i) => i.certificate.deviceId), { lock: true });
      const cas = new Map<string, CaRecord | undefined>();
      for (const caId of new Set(items.map((i) => i.certificate.caId))) cas.set(caId, await tx.cas.get(caId, { lock: 'share' }));
      // A key is one device's: held from here to the commit, so another node cannot certify it meanwhile.
      await tx.certificates.lockKeys(items.map((i) => i.certificate.publicKeySha256));
      const holders = new Map<string, { deviceId: DeviceId; status: CertificateStatus }[]>();
      for (const h of await tx.certificates.holdersOfKeys(items.map((i) => i.certificate.publicKeySha256))) {
        holders.set(h.publicKeySha256, [...(holders.get(h.publicKeySha256) ?? []), h]);
      }
      const keys = items.flatMap((i) => (i.batch ? [i.batch] : []));
      const produced = keys.length > 0 ? await tx.batches.serials(keys) : new Map<string, SerialHex>();

      const outcomes = new Array<CertificateRecord | RegistryError | SerialHex>(items.length);
      const pending: { index: number; record: CertificateRecord; key?: string; batch?: BatchKey; auditDetails?: JsonObject }[] = [];
      for (const [index, item] of items.entries()) {
        const certificate = item.certificate;
        const key = item.batch && batchKeyOf(item.batch);
        const earlier = key && produced.get(key);
        if (earlier) {
          outcomes[index] = earlier;
          continue;
        }
        if (!devices.has(certificate.deviceId) && item.createDevice) {
          const device: Device = { id: certificate.deviceId, status: 'ACTIVE', attributes: {}, gateway: false, createdAt: at, updatedAt: at };
          if (await tx.devices.insert(device)) {
            audit({ action: 'device.created', subjectType: 'device', subjectId: device.id, deviceId: device.id, details: { attributes: {}, gateway: false, batch: true } });
            announce({ type: 'device.created', deviceId: device.id, gateway: false, at: iso });
            devices.set(device.id, device);
          } else {
            const existing = await tx.devices.get(device.id, { lock: true }); // created meanwhile
            if (existing) devices.set(existing.id, existing);
          }
        }
        const refusal = enrollmentRefusal(devices.get(certificate.deviceId), certificate.deviceId) ?? caRefusal(cas.get(certificate.caId), certificate.caId) ?? keyRefusal(holders.get(certificate.publicKeySha256), certificate.deviceId);
        if (refusal) {
          outcomes[index] = refusal;
          continue;
        }
        const record: CertificateRecord = { ...certificate, status, createdAt: at };
        // A key certified twice in one group is the same device's (else refused above) and fine.
        holders.set(record.publicKeySha256, [...(holders.get(record.publicKeySha256) ?? []), record]);
        if (key) produced.set(key, record.serial); // the same line twice in one group: one certificate
        pending.push({ index, record, key, batch: item.batch, auditDetails: item.auditDetails });
      }

      const claiming = pending.filter((p) => p.batch);
      const claimed = claiming.length > 0 ? await tx.batches.claim(claiming.map((p) => ({ ...p.batch!, serial: p.record.serial })), at) : new Set<string>();
      const accepted: CertificateRecord[] = [];
      const superseded = new Map<SerialHex, SerialHex>();
      for (const p of pending) {
        if (p.key && !claimed.has(p.key)) {
          // Claimed by a transaction that committed first: answer with its certificate.
          const winner = (await tx.batches.serials([p.batch!])).get(p.key)!;
          superseded.set(p.record.serial, winner);
          outcomes[p.index] = winner;
          continue;
        }
        const record = p.record;
        accepted.push(record);
        outcomes[p.index] = record;
        noteIssued({ audit, announce, iso }, record, p.auditDetails);
      }
      await tx.certificates.insertMany(accepted);

      // Lines answered with an earlier certificate get its record.
      const recorded = new Map(accepted.map((r) => [r.serial, r]));
      return Promise.all(
        outcomes.map(async (o) => {
          if (typeof o !== 'string') return o;
          const serial = superseded.get(o) ?? o;
          return recorded.get(serial) ?? (await tx.certificates.bySerial(serial)) ?? new RegistryError('certificate_not_found', serial);
        }),
      );
    });
  }

  /**
   * Moves one certificate: revoke (final), deactivate, activate. Revoking a revoked
   * certificate announces the revocation again, which is how a caller recovers from a
   * failed publish; other repeated moves change nothing.
   */
  async setCertificateStatus(serial: SerialHex, to: CertificateStatus, actor: Actor, reason?: string): Promise<CertificateRecord> {
    let republish: RegistryEvent | undefined;
    const record = await this.changes.run(actor, async (change) => {
      const cert = await change.tx.certificates.bySerial(serial, { lock: true });
      if (!cert) throw new RegistryError('certificate_not_found', serial);
      if (!certificateMove(cert.status, to, serial)) {
        if (to === 'REVOKED') republish = certificateEvent(cert, 'REVOKED', cert.revokedAt!.toISOString(), cert.revocationReason);
        return cert;
      }
      if (to === 'ACTIVE') {
        await enrollableDevice(change.tx, cert.deviceId, { lock: true, action: 'activate' });
        // Rotation retired the CA because nothing under it was active: keep it that way.
        if ((await change.tx.cas.get(cert.caId))?.status === 'RETIRED') throw new RegistryError('ca_retired', cert.caId);
      }
      await moveCertificate(change, cert, to, reason);
      return (await change.tx.certificates.bySerial(serial))!;
    });
    if (republish) await this.changes.announce([republish]);
    return record;
  }

  /**
   * A renewed certificate was seen on a connection, or its grace period ran out: the
   * certificate it renewed turns INACTIVE (if it is still ACTIVE), and the renewal is
   * settled. Returns whether anything was pending. Idempotent: seeing it again changes nothing.
   */
  async retirePredecessor(serial: SerialHex, cause: 'seen' | 'grace', actor: Actor): Promise<boolean> {
    return this.changes.run(actor, async (change) => {
      const renewed = await change.tx.certificates.bySerial(serial, { lock: true });
      if (!renewed?.predecessorRetiresAt) return false;
      const previous = renewed.renewedFrom ? await change.tx.certificates.bySerial(renewed.renewedFrom, { lock: true }) : undefined;
      if (previous?.status === 'ACTIVE') await moveCertificate(change, previous, 'INACTIVE', cause === 'seen' ? `renewed: ${serial} seen on a connection` : `renewed: grace period of ${serial} over`);
      await change.tx.certificates.settleRenewal(serial);
      return true;
    });
  }

  /** Settles every renewal whose grace period is over by now; returns how many. */
  async retireOverdue(actor: Actor, now: Date, batch = 500): Promise<number> {
    let settled = 0;
    for (;;) {
      const due = await this.store.certificates.overdueRenewals(now, batch);
      for (const serial of due) if (await this.retirePredecessor(serial, 'grace', actor)) settled++;
      if (due.length < batch) return settled;
    }
  }

  /**
   * Moves a device: disable (reversible, no certificate of it admitted), enable, or
   * decommission (final: every certificate revoked, its identity burnt).
   */
  async setDeviceStatus(id: DeviceId, to: DeviceStatus, actor: Actor, reason?: string): Promise<DeviceView> {
    const republish: RegistryEvent[] = [];
    await this.changes.run(actor, async (change) => {
      const { tx, iso, audit, announce } = change;
      const device = await tx.devices.get(id, { lock: true });
      if (!device) throw new RegistryError('device_not_found', id);
      const moved = deviceMove(device.status, to, id);
      // Decommissioning revokes the certificates first, so their revocations are what the
      // broker hears first and reports (certificate_revoked), not the device's new status.
      if (to === 'DECOMMISSIONED') {
        for (const cert of await tx.certificates.ofDevice(id)) {
          if (cert.status !== 'REVOKED') await moveCertificate(change, cert, 'REVOKED', reason);
          else if (!moved) republish.push(certificateEvent(cert, 'REVOKED', cert.revokedAt!.toISOString(), cert.revocationReason));
        }
      }
      if (moved) {
        await tx.devices.setStatus(id, to, change.at);
        audit({ action: `device.${to.toLowerCase()}`, subjectType: 'device', subjectId: id, deviceId: id, reason, details: { previous: device.status } });
        announce({ type: 'device.status', deviceId: id, status: to, at: iso, reason });
      } else if (to === 'DECOMMISSIONED') {
        republish.push({ type: 'device.status', deviceId: id, status: to, at: iso, reason });
      }
    });
    if (republish.length) await this.changes.announce(republish);
    return this.deviceView(id);
  }
}

async function enrollableDevice(q: RegistryQueries, deviceId: DeviceId, options: { lock?: boolean; action?: string } = {}): Promise<Device> {
  const device = await q.devices.get(deviceId, { lock: options.lock });
  const refusal = enrollmentRefusal(device, deviceId, options.action);
  if (refusal) throw refusal;
  return device!;
}

export function enrollmentRefusal(device: Device | undefined, deviceId: DeviceId, action?: string): RegistryError | undefined {
  if (!device) return new RegistryError('device_not_found', deviceId);
  if (device.status === 'DECOMMISSIONED') return new RegistryError('device_decommissioned', deviceId);
  // A disabled device keeps its certificates but gets no new one; its certificates may still
  // be activated, since admission checks the device status anyway.
  if (device.status === 'DISABLED' && action !== 'activate') return new RegistryError('device_disabled', deviceId);
  return undefined;
}

export function caRefusal(ca: CaRecord | undefined, caId: string): RegistryError | undefined {
  if (!ca) return new RegistryError('ca_not_found', caId);
  if (ca.status === 'REVOKED') return new RegistryError('ca_revoked', caId);
  if (ca.status === 'RETIRED') return new RegistryError('ca_retired', caId);
  return undefined;
}

/** A key is one identity's: reusing another device's key, or any revoked key, is refused. */
function keyRefusal(holders: readonly { deviceId: DeviceId; status: CertificateStatus }[] | undefined, deviceId: DeviceId): RegistryError | undefined {
  return holders?.some((c) => c.deviceId !== deviceId || c.status === 'REVOKED') ? new RegistryError('public_key_in_use') : undefined;
}

/** Audits and announces a certificate just recorded; `details` adds to the audit entry. */
export function noteIssued(change: Pick<Change, 'audit' | 'announce' | 'iso'>, record: CertificateRecord, details: JsonObject = {}): void {
  const renewal = record.renewedFrom ? { renewedFrom: record.renewedFrom, predecessorRetiresAt: record.predecessorRetiresAt?.toISOString() } : {};
  change.audit({
    action: record.renewedFrom ? 'certificate.renewed' : 'certificate.issued',
    subjectType: 'certificate',
    subjectId: record.serial,
    deviceId: record.deviceId,
    certificateSerial: record.serial,
    details: { fingerprint: record.fingerprint, ca: record.caId, status: record.status, ...renewal, ...details, notBefore: record.notBefore.toISOString(), notAfter: record.notAfter.toISOString() },
  });
  change.announce({ type: 'certificate.created', serial: record.serial, fingerprint: record.fingerprint, deviceId: record.deviceId, caId: record.caId, status: record.status, at: change.iso });
}

export async function moveCertificate(change: Change, cert: CertificateRecord, to: CertificateStatus, reason?: string): Promise<void> {
  await change.tx.certificates.setStatus(cert.serial, to, change.at, reason);
  change.audit({
    action: to === 'REVOKED' ? 'certificate.revoked' : to === 'ACTIVE' ? 'certificate.activated' : 'certificate.deactivated',
    subjectType: 'certificate',
    subjectId: cert.serial,
    deviceId: cert.deviceId,
    certificateSerial: cert.serial,
    reason,
    details: { fingerprint: cert.fingerprint, previous: cert.status },
  });
  change.announce(certificateEvent(cert, to, change.iso, reason));
}
