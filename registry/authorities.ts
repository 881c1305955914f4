// Certificate authorities: the ones this service signs with, the ones operators bring, the
// registration codes that prove possession of the latter, cascading revocation, and
// just-in-time registration of unknown certificates an operator's CA signed.
import { randomBytes } from 'node:crypto';
import type { Change, Changes } from './changes.js';
import type { Clock } from './clock.js';
import { RegistryError } from './errors.js';
import type { DeviceId, Fingerprint, SerialHex } from './ids.js';
import { isDeviceId } from './ids.js';
import { certificateEvent } from './lifecycle.js';
import type { Actor, CaRecord, CertificateStatus, UnknownCertificatePolicy } from './model.js';
import type { RegistryStore } from './store.js';

const REGISTRATION_CODE_TTL_MS = 60 * 60 * 1000;

export interface UnknownCertificate {
  serial: SerialHex;
  fingerprint: Fingerprint;
  publicKeySha256: string;
  /** The certificate's CN, which becomes the device id. */
  commonName?: string;
  notBefore: Date;
  notAfter: Date;
  pem: string;
}

export type JitRefusal = 'policy' | 'invalid_device_id' | 'device_decommissioned' | 'device_of_another_ca' | 'public_key_in_use' | 'ca_revoked';

export type JitOutcome = { outcome: 'registered'; status: CertificateStatus; deviceId: DeviceId } | { outcome: 'refused'; why: JitRefusal };

/** The CA and every CA below it, from a list of all CAs. */
export function caSubtree(cas: readonly CaRecord[], rootId: string): string[] {
  const ids = [rootId];
  for (let i = 0; i < ids.length; i++) for (const ca of cas) if (ca.parentId === ids[i]) ids.push(ca.id);
  return ids;
}

/** Inserts a CA within a change: its name and id unused, audited, announced. */
export async function insertCa({ tx, iso, audit, announce }: Change, ca: CaRecord): Promise<void> {
  await tx.cas.lockNames([ca.id, ca.name]);
  if ((await tx.cas.all()).some((c) => c.id === ca.id || c.name === ca.name)) throw new RegistryError('ca_exists', ca.name);
  await tx.cas.insert(ca);
  audit({
    action: ca.external ? 'ca.registered' : 'ca.created',
    subjectType: 'ca',
    subjectId: ca.id,
    details: { name: ca.name, subject: ca.subject, parent: ca.parentId ?? null, unknownCertificates: ca.unknownCertificates ?? null },
  });
  announce({ type: 'ca.created', caId: ca.id, parentId: ca.parentId, external: ca.external, at: iso });
}

export class Authorities {
  constructor(
    private readonly store: RegistryStore,
    private readonly changes: Changes,
    private readonly clock: Clock,
  ) {}

  list(): Promise<CaRecord[]> {
    return this.store.cas.all();
  }

  async get(id: string): Promise<CaRecord> {
    const ca = await this.store.cas.get(id);
    if (!ca) throw new RegistryError('ca_not_found', id);
    return ca;
  }

  /** Records a CA: one this service just created, or an operator's whose code was checked. */
  async record(ca: CaRecord, actor: Actor, registrationCode?: string): Promise<CaRecord> {
    return this.changes.run(actor, async (change) => {
      if (registrationCode !== undefined && !(await change.tx.codes.consume(registrationCode, change.at))) throw new RegistryError('registration_code_invalid');
      await insertCa(change, ca);
      return ca;
    });
  }

  async issueRegistrationCode(actor: Actor): Promise<{ code: string; expiresAt: Date }> {
    const code = randomBytes(24).toString('hex');
    return this.changes.run(actor, async ({ tx, at, audit }) => {
      const expiresAt = new Date(at.getTime() + REGISTRATION_CODE_TTL_MS);
      await tx.codes.insert(code, at, expiresAt);
      // The code itself is a credential; the audit keeps only its prefix.
      audit({ action: 'ca.registration_code_issued', subjectType: 'ca', subjectId: `code:${code.slice(0, 8)}`, details: { expiresAt: expiresAt.toISOString() } });
      return { code, expiresAt };
    });
  }

  async setUnknownCertificatePolicy(id: string, policy: UnknownCertificatePolicy, actor: Actor): Promise<CaRecord> {
    return this.changes.run(actor, async ({ tx, audit }) => {
      const ca = await tx.cas.get(id, { lock: true });
      if (!ca) throw new RegistryError('ca_not_found', id);
      if (!ca.external) throw new RegistryError('ca_cannot_issue', 'policies for unknown certificates apply to operators’ own CAs');
      await tx.cas.setUnknownCertificatePolicy(id, policy);
      audit({ action: 'ca.policy_changed', subjectType: 'ca', subjectId: id, details: { previous: ca.unknownCertificates ?? null, unknownCertificates: policy } });
      return { ...ca, unknownCertificates: policy };
    });
  }

  /**
   * Revokes a CA with everything below it — sub-CAs and every certificate they issued — in one
   * transaction, acknowledged once durable and published.
   */
  async revoke(id: string, actor: Actor, reason?: string): Promise<{ ca: CaRecord; cas: string[]; certificates: number }> {
    return this.changes.run(actor, async ({ tx, at, iso, audit, announce }) => {
      const all = await tx.cas.all();
      const ca = all.find((c) => c.id === id);
      if (!ca) throw new RegistryError('ca_not_found', id);
      if (!ca.parentId && !ca.external) throw new RegistryError('ca_is_root', id);
      const subtree = caSubtree(all, id);
      const newlyRevoked = all.filter((c) => subtree.includes(c.id) && c.status !== 'REVOKED');
      await tx.cas.revoke(subtree, at, reason);
      const certificates = await tx.certificates.revokeUnder(subtree, at, reason);
      for (const c of newlyRevoked) {
        audit({ action: 'ca.revoked', subjectType: 'ca', subjectId: c.id, reason, details: { cascadeFrom: id } });
        announce({ type: 'ca.status', caId: c.id, status: 'REVOKED', at: iso, reason });
      }
      for (const cert of certificates) {
        audit({ action: 'certificate.revoked', subjectType: 'certificate', subjectId: cert.serial, deviceId: cert.deviceId, certificateSerial: cert.serial, reason, details: { fingerprint: cert.fingerprint, previous: cert.status, cascadeFrom: id } });
        announce(certificateEvent(cert, 'REVOKED', iso, reason));
      }
      return { ca: { ...ca, status: 'REVOKED', revokedAt: ca.revokedAt ?? at }, cas: subtree, certificates: certificates.length };
    });
  }

  /** What a CA's CRL lists: its revoked certificates, stations, claim certificates and sub-CAs. */
  async crlEntries(caId: string): Promise<{ serial: SerialHex; revokedAt: Date; revocationReason?: string }[]> {
    const now = this.clock();
    const [certificates, stations, claims, cas] = await Promise.all([
      this.store.certificates.revokedUnder(caId, now),
      this.store.stations.revokedUnder(caId, now),
      this.store.claims.revokedUnder(caId, now),
      this.store.cas.revokedChildren(caId, now),
    ]);
    return [...cas, ...stations, ...claims, ...certificates];
  }

  /**
   * An unknown certificate, signed by an operator's CA, reached the broker: register it (and
   * its device) as the CA's current policy says, or refuse it. Every outcome is audited.
   */
  async registerUnknown(caId: string, cert: UnknownCertificate, actor: Actor): Promise<JitOutcome> {
    return this.changes.run(actor, async ({ tx, at, iso, audit, announce }): Promise<JitOutcome> => {
      // Read here, inside the change: the policy and status that apply are the current ones.
      const ca = await tx.cas.get(caId, { lock: true });
      if (!ca) throw new RegistryError('ca_not_found', caId);
      const policy = ca.unknownCertificates ?? 'refuse';
      let why: JitRefusal | undefined = ca.status === 'REVOKED' ? 'ca_revoked' : policy === 'refuse' ? 'policy' : !isDeviceId(cert.commonName) ? 'invalid_device_id' : undefined;
      let registered: JitOutcome | undefined;
      if (!why) {
        const deviceId = cert.commonName as DeviceId;
        const status: CertificateStatus = policy === 'register-active' ? 'ACTIVE' : 'PENDING_ACTIVATION';
        let device = await tx.devices.get(deviceId, { lock: true });
        const holders = await tx.certificates.withPublicKey(cert.publicKeySha256);
        // A device that already has certificates from another CA is that CA's identity: an
        // operator's CA naming it in a CN must not become a second way in as that device.
        const others = device ? (await tx.certificates.ofDevice(deviceId)).filter((c) => c.caId !== ca.id) : [];
        if (device?.status === 'DECOMMISSIONED') why = 'device_decommissioned';
        else if (others.length > 0) why = 'device_of_another_ca';
        else if (holders.some((c) => c.deviceId !== deviceId || c.status === 'REVOKED')) why = 'public_key_in_use';
        else {
          if (!device) {
            device = { id: deviceId, status: 'ACTIVE', attributes: { registeredBy: 'just-in-time', ca: ca.id }, gateway: false, createdAt: at, updatedAt: at };
            await tx.devices.insert(device);
            audit({ action: 'device.created', subjectType: 'device', subjectId: deviceId, deviceId, details: { justInTime: true, ca: ca.id } });
            announce({ type: 'device.created', deviceId, gateway: false, at: iso });
          }
          await tx.certificates.insert({ ...cert, deviceId, caId: ca.id, status, createdAt: at });
          audit({ action: 'certificate.jit_registered', subjectType: 'certificate', subjectId: cert.serial, deviceId, certificateSerial: cert.serial, details: { ca: ca.id, fingerprint: cert.fingerprint, status, policy } });
          announce({ type: 'certificate.created', serial: cert.serial, fingerprint: cert.fingerprint, deviceId, caId: ca.id, status, at: iso });
          registered = { outcome: 'registered', status, deviceId };
        }
      }
      if (registered) return registered;
      audit({
        action: 'certificate.jit_refused',
        subjectType: 'certificate',
        subjectId: cert.serial,
        deviceId: cert.commonName,
        certificateSerial: cert.serial,
        reason: why,
        details: { ca: ca.id, fingerprint: cert.fingerprint, policy },
      });
      return { outcome: 'refused', why: why! };
    });
  }
}

