import type { Selectable } from 'kysely';
import type { DeviceId, Fingerprint, SerialHex } from '../ids.js';
import type { AdmissionRecord, CertificateRecord, CertificateStatus, DeviceStatus } from '../model.js';
import type { CertificatesTable } from '../schema.js';
import { chunks, insertRows, lockNames, LOCK_SPACES, orUndefined, selectWhereIn, toDate, toOptionalDate, type QueryContext } from './executor.js';

function toCertificate(row: Selectable<CertificatesTable>): CertificateRecord {
  return {
    serial: row.serial as SerialHex,
    fingerprint: row.fingerprint as Fingerprint,
    publicKeySha256: row.public_key_sha256,
    deviceId: row.device_id as DeviceId,
    caId: row.ca_id,
    notBefore: toDate(row.not_before),
    notAfter: toDate(row.not_after),
    status: row.status as CertificateStatus,
    pem: row.pem,
    createdAt: toDate(row.created_at),
    revokedAt: toOptionalDate(row.revoked_at),
    revocationReason: orUndefined(row.revocation_reason),
    renewedFrom: orUndefined(row.renewed_from) as SerialHex | undefined,
    predecessorRetiresAt: toOptionalDate(row.predecessor_retires_at),
  };
}

/** A certificate reduced to what events and sessions need. */
export interface CertificateRef {
  serial: SerialHex;
  fingerprint: Fingerprint;
  deviceId: DeviceId;
  caId: string;
  status: CertificateStatus;
}

const CERTIFICATE_COLUMNS = [
  'serial',
  'fingerprint',
  'public_key_sha256',
  'device_id',
  'ca_id',
  'not_before',
  'not_after',
  'status',
  'pem',
  'created_at',
  'revoked_at',
  'revocation_reason',
  'renewed_from',
  'predecessor_retires_at',
] as const;

export class CertificateQueries {
  constructor(private readonly q: QueryContext) {}

  async insert(r: CertificateRecord): Promise<void> {
    await this.insertMany([r]);
  }

  /** Many at once: issuing in groups is how issuance keeps up with a factory line. */
  async insertMany(records: readonly CertificateRecord[]): Promise<void> {
    const rows = records.map((r) => [
      r.serial,
      r.fingerprint,
      r.publicKeySha256,
      r.deviceId,
      r.caId,
      r.notBefore.getTime(),
      r.notAfter.getTime(),
      r.status,
      r.pem,
      r.createdAt.getTime(),
      r.revokedAt?.getTime() ?? null,
      r.revocationReason ?? null,
      r.renewedFrom ?? null,
      r.predecessorRetiresAt?.getTime() ?? null,
    ]);
    await insertRows(this.q, 'certificates', CERTIFICATE_COLUMNS, rows);
  }

  async bySerial(serial: SerialHex, options: { lock?: boolean } = {}): Promise<CertificateRecord | undefined> {
    let query = this.q.db.selectFrom('certificates').selectAll().where('serial', '=', serial);
    if (options.lock && this.q.dialect === 'postgres') query = query.forUpdate();
    const row = await query.executeTakeFirst();
    return row && toCertificate(row);
  }

  async ofDevice(id: DeviceId): Promise<CertificateRecord[]> {
    const rows = await this.q.db.selectFrom('certificates').selectAll().where('device_id', '=', id).orderBy('created_at').orderBy('serial').execute();
    return rows.map(toCertificate);
  }

  /** Until the transaction ends, no other may certify these keys (see lockNames). */
  lockKeys(publicKeySha256s: readonly string[]): Promise<void> {
    return lockNames(this.q, LOCK_SPACES.publicKey, publicKeySha256s);
  }

  async withPublicKey(publicKeySha256: string): Promise<CertificateRecord[]> {
    const rows = await this.q.db.selectFrom('certificates').selectAll().where('public_key_sha256', '=', publicKeySha256).execute();
    return rows.map(toCertificate);
  }

  /** Who holds each of these keys already: the device and status of every certificate for them. */
  async holdersOfKeys(publicKeySha256s: readonly string[]): Promise<{ publicKeySha256: string; deviceId: DeviceId; status: CertificateStatus }[]> {
    const holders = [];
    for (const keys of chunks([...new Set(publicKeySha256s)])) {
      const rows = await this.q.db.selectFrom('certificates').select(['public_key_sha256', 'device_id', 'status']).where('public_key_sha256', 'in', keys).execute();
      for (const r of rows) holders.push({ publicKeySha256: r.public_key_sha256, deviceId: r.device_id as DeviceId, status: r.status as CertificateStatus });
    }
    return holders;
  }

  async setStatus(serial: SerialHex, status: CertificateStatus, at: Date, reason?: string): Promise<void> {
    const revoked = status === 'REVOKED';
    await this.q.db
      .updateTable('certificates')
      .set({ status, revoked_at: revoked ? at.getTime() : null, revocation_reason: revoked ? (reason ?? null) : null })
      .where('serial', '=', serial)
      .execute();
  }

  async byFingerprint(fingerprint: Fingerprint): Promise<CertificateRecord | undefined> {
    const row = await this.q.db.selectFrom('certificates').selectAll().where('fingerprint', '=', fingerprint).executeTakeFirst();
    return row && toCertificate(row);
  }

  /** The renewal is settled: its predecessor is retired (or was already). */
  async settleRenewal(serial: SerialHex): Promise<void> {
    await this.q.db.updateTable('certificates').set({ predecessor_retires_at: null }).where('serial', '=', serial).execute();
  }

  /** Renewals whose grace period has run out by `now`, oldest first. */
  async overdueRenewals(now: Date, limit: number): Promise<SerialHex[]> {
    const rows = await this.q.db
      .selectFrom('certificates')
      .select('serial')
      .where('predecessor_retires_at', '<=', now.getTime())
      .orderBy('predecessor_retires_at')
      .limit(limit)
      .execute();
    return rows.map((r) => r.serial as SerialHex);
  }

  /** Revokes every certificate of the given CAs that is not revoked yet; returns them. */
  async revokeUnder(caIds: string[], at: Date, reason?: string): Promise<CertificateRef[]> {
    const revoked: CertificateRef[] = [];
    for (const ids of chunks(caIds)) {
      const rows = await this.q.db
        .selectFrom('certificates')
        .select(['serial', 'fingerprint', 'device_id', 'ca_id', 'status'])
        .where('ca_id', 'in', ids)
        .where('status', '!=', 'REVOKED')
        .execute();
      if (rows.length === 0) continue;
      await this.q.db
        .updateTable('certificates')
        .set({ status: 'REVOKED', revoked_at: at.getTime(), revocation_reason: reason ?? null })
        .where('ca_id', 'in', ids)
        .where('status', '!=', 'REVOKED')
        .execute();
      for (const r of rows) revoked.push({ serial: r.serial as SerialHex, fingerprint: r.fingerprint as Fingerprint, deviceId: r.device_id as DeviceId, caId: r.ca_id, status: r.status as CertificateStatus });
    }
    return revoked;
  }

  /** Revoked certificates of a CA that have not expired by `now`: its CRL's entries. */
  async revokedUnder(caId: string, now: Date): Promise<{ serial: SerialHex; revokedAt: Date; revocationReason?: string }[]> {
    const rows = await this.q.db
      .selectFrom('certificates')
      .select(['serial', 'revoked_at', 'revocation_reason'])
      .where('ca_id', '=', caId)
      .where('status', '=', 'REVOKED')
      .where('not_after', '>', now.getTime())
      .orderBy('serial')
      .execute();
    return rows.map((r) => ({ serial: r.serial as SerialHex, revokedAt: toDate(r.revoked_at!), revocationReason: orUndefined(r.revocation_reason) }));
  }

  async admissionRecord(fingerprint: Fingerprint): Promise<AdmissionRecord | undefined> {
    return (await this.admissionRecords([fingerprint])).get(fingerprint);
  }

  /** What admission needs to know of each certificate, with its device's status; absent ones are unknown. */
  async admissionRecords(fingerprints: readonly Fingerprint[]): Promise<Map<Fingerprint, AdmissionRecord>> {
    const found = new Map<Fingerprint, AdmissionRecord>();
    for (const slice of chunks([...new Set(fingerprints)])) {
      // Every CONNECT the verdict cache cannot answer comes here: compiled once (selectWhereIn).
      const rows = await selectWhereIn(this.q, 'admissionRecords', slice, (values) =>
        this.q.db
          .selectFrom('certificates')
          .innerJoin('devices', 'devices.id', 'certificates.device_id')
          .select([
            'certificates.serial',
            'certificates.fingerprint',
            'certificates.device_id',
            'certificates.status as certificate_status',
            'devices.status as device_status',
            'certificates.not_before',
            'certificates.not_after',
            'certificates.ca_id',
            'certificates.predecessor_retires_at',
          ])
          .where('certificates.fingerprint', 'in', values as Fingerprint[]),
      );
      for (const row of rows) {
        found.set(row.fingerprint as Fingerprint, {
          serial: row.serial as SerialHex,
          fingerprint: row.fingerprint as Fingerprint,
          deviceId: row.device_id as DeviceId,
          certificateStatus: row.certificate_status as CertificateStatus,
          deviceStatus: row.device_status as DeviceStatus,
          notBefore: toDate(row.not_before),
          notAfter: toDate(row.not_after),
          caId: row.ca_id,
          renewalPending: row.predecessor_retires_at !== null,
        });
      }
    }
    return found;
  }

  /** Certificates in a status, optionally only those with notAfter or notBefore in a range. */
  async find(filter: { status?: CertificateStatus; caIds?: string[]; notAfterBefore?: Date; notBeforeBefore?: Date; limit?: number }): Promise<CertificateRecord[]> {
    let query = this.q.db.selectFrom('certificates').selectAll();
    if (filter.status) query = query.where('status', '=', filter.status);
    if (filter.caIds) {
      if (filter.caIds.length === 0) return [];
      query = query.where('ca_id', 'in', filter.caIds);
    }
    if (filter.notAfterBefore) query = query.where('not_after', '<', filter.notAfterBefore.getTime());
    if (filter.notBeforeBefore) query = query.where('not_before', '<', filter.notBeforeBefore.getTime());
    const rows = await query.orderBy('not_after').limit(filter.limit ?? 1000).execute();
    return rows.map(toCertificate);
  }

  async count(filter: { status?: CertificateStatus; notAfterBefore?: Date }): Promise<number> {
    let query = this.q.db.selectFrom('certificates').select((eb) => eb.fn.countAll<number>().as('n'));
    if (filter.status) query = query.where('status', '=', filter.status);
    if (filter.notAfterBefore) query = query.where('not_after', '<', filter.notAfterBefore.getTime());
    return Number((await query.executeTakeFirstOrThrow()).n);
  }

  /** Every certificate's serial, device, CA and status, for building the fleet graph. */
  async edges(): Promise<{ serial: SerialHex; deviceId: DeviceId; caId: string; status: CertificateStatus }[]> {
    const rows = await this.q.db.selectFrom('certificates').select(['serial', 'device_id', 'ca_id', 'status']).execute();
    return rows.map((r) => ({ serial: r.serial as SerialHex, deviceId: r.device_id as DeviceId, caId: r.ca_id, status: r.status as CertificateStatus }));
  }
}
