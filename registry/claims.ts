// Claim batches (a production batch's shared claim certificate) and the certificates issued
// through them. A claim never names an identity itself: the certificate it yields is the
// registry's device's (invariant 4), recorded PENDING_ACTIVATION until the device registers
// it, and a device that exists already is never taken over — only one this batch left
// pending may be claimed again (a device that lost the answer and retries).
import type { Change, Changes } from './changes.js';
import type { Clock } from './clock.js';
import { RegistryError } from './errors.js';
import type { DeviceId, Fingerprint, SerialHex } from './ids.js';
import { caRefusal, moveCertificate, noteIssued, type NewCertificate } from './lifecycle.js';
import type { Actor, CertificateRecord, ClaimBatch, ClaimBinding } from './model.js';
import type { RegistryQueries, RegistryStore } from './store.js';

export type NewClaimBinding = Omit<ClaimBinding, 'serial' | 'deviceId' | 'batchId' | 'createdAt' | 'registeredAt'>;

/** The batch, if it may still issue at `at`. */
function issuingBatch(batch: ClaimBatch | undefined, id: string, at: Date): ClaimBatch {
  if (!batch) throw new RegistryError('claim_batch_not_found', id);
  if (batch.status === 'REVOKED') throw new RegistryError('claim_batch_revoked', id);
  if (batch.notAfter.getTime() < at.getTime()) throw new RegistryError('claim_batch_expired', id);
  return batch;
}

/**
 * Whether a claim of `batchId` may yield a certificate for `deviceId` with this key: the key
 * certified nowhere (not even as a claim key), the device absent or left pending by this batch.
 */
async function claimRefusal(q: RegistryQueries, batchId: string, deviceId: DeviceId, publicKeySha256: string): Promise<RegistryError | undefined> {
  if ((await q.certificates.withPublicKey(publicKeySha256)).length > 0 || (await q.claims.batchWithKey(publicKeySha256))) return new RegistryError('public_key_in_use');
  const device = await q.devices.get(deviceId);
  if (!device) return undefined;
  if (device.status === 'DECOMMISSIONED') return new RegistryError('device_decommissioned', deviceId);
  const [bindings, certificates] = await Promise.all([q.claims.bindingsOfDevice(deviceId), q.certificates.ofDevice(deviceId)]);
  const claimed = new Set(bindings.map((b) => b.serial));
  const leftPending =
    device.status === 'ACTIVE' &&
    bindings.length > 0 &&
    bindings.every((b) => b.batchId === batchId && !b.registeredAt) &&
    certificates.every((c) => claimed.has(c.serial) && (c.status === 'PENDING_ACTIVATION' || c.status === 'REVOKED'));
  return leftPending ? undefined : new RegistryError('claim_device_exists', deviceId);
}

export class ClaimBatches {
  constructor(
    private readonly store: RegistryStore,
    private readonly changes: Changes,
    private readonly clock: Clock,
  ) {}

  async create(batch: ClaimBatch, actor: Actor): Promise<ClaimBatch> {
    return this.changes.run(actor, async ({ tx, audit, announce, iso }) => {
      for (const group of batch.template.groups) if (!(await tx.groups.get(group))) throw new RegistryError('group_not_found', group);
      caRefusalOrThrow(await tx.cas.get(batch.caId, { lock: 'share' }), batch.caId);
      // A claim key is shared by a whole batch: never one a device holds (or held).
      await tx.certificates.lockKeys([batch.publicKeySha256]);
      if ((await tx.certificates.withPublicKey(batch.publicKeySha256)).length > 0 || (await tx.claims.batchWithKey(batch.publicKeySha256))) throw new RegistryError('public_key_in_use');
      if (!(await tx.claims.insertBatch(batch))) throw new RegistryError('claim_batch_exists', batch.id);
      audit({
        action: 'claim_batch.created',
        subjectType: 'claim_batch',
        subjectId: batch.id,
        details: { ca: batch.caId, serial: batch.serial, fingerprint: batch.fingerprint, notAfter: batch.notAfter.toISOString(), template: batch.template, rateLimit: batch.rateLimit, hook: batch.hook?.url ?? null },
      });
      announce({ type: 'claim_batch.status', batchId: batch.id, fingerprint: batch.fingerprint, caId: batch.caId, status: 'ACTIVE', at: iso });
      return batch;
    });
  }

  async get(id: string): Promise<ClaimBatch> {
    const batch = await this.find(id);
    if (!batch) throw new RegistryError('claim_batch_not_found', id);
    return batch;
  }

  find(id: string): Promise<ClaimBatch | undefined> {
    return this.store.claims.batch(id);
  }

  list(): Promise<ClaimBatch[]> {
    return this.store.claims.batches();
  }

  byFingerprint(fingerprint: Fingerprint): Promise<ClaimBatch | undefined> {
    return this.store.claims.batchByFingerprint(fingerprint);
  }

  counts(id: string): Promise<{ issued: number; registered: number }> {
    return this.store.claims.counts(id);
  }

  /**
   * Revokes the claim certificate: its sessions are closed and it admits nothing more. The
   * certificates it minted that were never registered go with it (a batch revoked for a
   * leaked claim key leaves no pending identity the leak may have minted); those registered
   * are their devices' own and stay.
   */
  async revoke(id: string, actor: Actor, reason?: string): Promise<ClaimBatch> {
    let republish: ClaimBatch | undefined;
    const batch = await this.changes.run(actor, async (change) => {
      const { tx, at, iso, audit, announce } = change;
      const batch = await tx.claims.batch(id, { lock: true });
      if (!batch) throw new RegistryError('claim_batch_not_found', id);
      if (batch.status === 'REVOKED') {
        republish = batch; // announced again, as a repeated certificate revocation is
        return batch;
      }
      await tx.claims.revokeBatch(id, at, reason);
      for (const binding of await tx.claims.unregisteredOfBatch(id)) {
        const cert = await tx.certificates.bySerial(binding.serial, { lock: true });
        if (cert && cert.status !== 'REVOKED') await moveCertificate(change, cert, 'REVOKED', reason ?? 'claim batch revoked');
      }
      audit({ action: 'claim_batch.revoked', subjectType: 'claim_batch', subjectId: id, certificateSerial: batch.serial, reason, details: { fingerprint: batch.fingerprint } });
      announce({ type: 'claim_batch.status', batchId: id, fingerprint: batch.fingerprint, caId: batch.caId, status: 'REVOKED', at: iso });
      return { ...batch, status: 'REVOKED' as const, revokedAt: at, revocationReason: reason };
    });
    if (republish) await this.changes.announce([{ type: 'claim_batch.status', batchId: id, fingerprint: republish.fingerprint, caId: republish.caId, status: 'REVOKED', at: republish.revokedAt!.toISOString() }]);
    return batch;
  }

  /** The refusal a claim would meet now, checked before anything is signed (and again when recording). */
  async issuable(batchId: string, deviceId: DeviceId, publicKeySha256: string): Promise<void> {
    issuingBatch(await this.store.claims.batch(batchId), batchId, this.clock());
    const refusal = await claimRefusal(this.store, batchId, deviceId, publicKeySha256);
    if (refusal) throw refusal;
  }

  /**
   * Records a certificate issued through a claim: the device (created if absent), the
   * certificate PENDING_ACTIVATION, and what registering it will bind. Earlier pending
   * certificates this batch issued for the device are revoked as superseded.
   */
  async recordIssued(batchId: string, certificate: NewCertificate, binding: NewClaimBinding, actor: Actor): Promise<CertificateRecord> {
    return this.changes.run(actor, async (change) => {
      const { tx, at, iso, audit, announce } = change;
      issuingBatch(await tx.claims.batch(batchId, { lock: true }), batchId, at);
      caRefusalOrThrow(await tx.cas.get(certificate.caId, { lock: 'share' }), certificate.caId);
      await tx.certificates.lockKeys([certificate.publicKeySha256]);
      const refusal = await claimRefusal(tx, batchId, certificate.deviceId, certificate.publicKeySha256);
      if (refusal) throw refusal;

      if (await tx.devices.insert({ id: certificate.deviceId, status: 'ACTIVE', attributes: binding.attributes, gateway: false, createdAt: at, updatedAt: at })) {
        audit({ action: 'device.created', subjectType: 'device', subjectId: certificate.deviceId, deviceId: certificate.deviceId, details: { attributes: binding.attributes, claimBatch: batchId } });
        announce({ type: 'device.created', deviceId: certificate.deviceId, gateway: false, at: iso });
      }
      await supersedePending(change, certificate.deviceId);

      const record: CertificateRecord = { ...certificate, status: 'PENDING_ACTIVATION', createdAt: at };
      await tx.certificates.insert(record);
      await tx.claims.insertBinding({ ...binding, serial: record.serial, batchId, deviceId: record.deviceId, createdAt: at });
      noteIssued(change, record, { claimBatch: batchId });
      return record;
    });
  }

  /**
   * Binds a certificate issued through a claim to its device: the device takes the approved
   * attributes and group memberships, and the certificate becomes ACTIVE.
   */
  async register(batchId: string, deviceId: DeviceId, serial: SerialHex, actor: Actor): Promise<{ certificate: CertificateRecord; binding: ClaimBinding }> {
    return this.changes.run(actor, async (change) => {
      const { tx, at, iso, audit, announce } = change;
      issuingBatch(await tx.claims.batch(batchId), batchId, at);
      const binding = await tx.claims.binding(serial, { lock: true });
      if (!binding || binding.batchId !== batchId || binding.deviceId !== deviceId) throw new RegistryError('claim_binding_unknown', `${deviceId} ${serial}`);
      if (binding.registeredAt) throw new RegistryError('claim_already_registered', serial);
      const certificate = (await tx.certificates.bySerial(serial, { lock: true }))!;
      if (certificate.status !== 'PENDING_ACTIVATION') throw new RegistryError(certificate.status === 'REVOKED' ? 'certificate_revoked' : 'claim_already_registered', serial);
      const device = await tx.devices.get(deviceId, { lock: true });
      if (device?.status !== 'ACTIVE') throw new RegistryError(device?.status === 'DISABLED' ? 'device_disabled' : 'device_decommissioned', deviceId);

      if (JSON.stringify(device.attributes) !== JSON.stringify(binding.attributes)) await tx.devices.setAttributes(deviceId, binding.attributes, at);
      for (const groupId of binding.groups) {
        if (!(await tx.groups.addMember(groupId, deviceId, at))) continue;
        audit({ action: 'group.member_added', subjectType: 'group', subjectId: groupId, deviceId, details: { claimBatch: batchId } });
        announce({ type: 'group.membership', groupId, deviceId, member: true, at: iso });
      }
      await tx.claims.markRegistered(serial, at);
      audit({ action: 'claim.registered', subjectType: 'claim_batch', subjectId: batchId, deviceId, certificateSerial: serial, details: { parameters: binding.parameters, groups: binding.groups } });
      await moveCertificate(change, certificate, 'ACTIVE', `registered through claim batch ${batchId}`);
      return { certificate: { ...certificate, status: 'ACTIVE' }, binding: { ...binding, registeredAt: at } };
    });
  }
}

function caRefusalOrThrow(...args: Parameters<typeof caRefusal>): void {
  const refusal = caRefusal(...args);
  if (refusal) throw refusal;
}

/** Revokes the device's claim certificates still pending: a newer claim replaces them. */
async function supersedePending(change: Change, deviceId: DeviceId): Promise<void> {
  for (const cert of await change.tx.certificates.ofDevice(deviceId)) {
    if (cert.status === 'PENDING_ACTIVATION') await moveCertificate(change, cert, 'REVOKED', 'superseded');
  }
}
