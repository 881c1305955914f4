import type { Selectable } from 'kysely';
import type { SerialHex } from '../ids.js';
import type { CaRecord, CaStatus, UnknownCertificatePolicy } from '../model.js';
import type { CasTable } from '../schema.js';
import { chunks, lockNames, LOCK_SPACES, orUndefined, toDate, toOptionalDate, type QueryContext } from './executor.js';

function toCa(row: Selectable<CasTable>): CaRecord {
  return {
    id: row.id,
    name: row.name,
    parentId: orUndefined(row.parent_id),
    subject: row.subject,
    serial: row.serial as SerialHex,
    keyId: row.key_id,
    pem: row.pem,
    notBefore: toDate(row.not_before),
    notAfter: toDate(row.not_after),
    status: row.status as CaStatus,
    external: Number(row.external) === 1,
    unknownCertificates: orUndefined(row.unknown_certificates) as UnknownCertificatePolicy | undefined,
    createdAt: toDate(row.created_at),
    revokedAt: toOptionalDate(row.revoked_at),
    revocationReason: orUndefined(row.revocation_reason),
  };
}

export class CaQueries {
  constructor(private readonly q: QueryContext) {}

  /** Until the transaction ends, no other may record a CA of these ids or names (see lockNames). */
  lockNames(names: readonly string[]): Promise<void> {
    return lockNames(this.q, LOCK_SPACES.caName, names);
  }

  async insert(r: CaRecord): Promise<void> {
    await this.q.db
      .insertInto('cas')
      .values({
        id: r.id,
        name: r.name,
        parent_id: r.parentId ?? null,
        subject: r.subject,
        serial: r.serial,
        key_id: r.keyId,
        pem: r.pem,
        not_before: r.notBefore.getTime(),
        not_after: r.notAfter.getTime(),
        status: r.status,
        external: r.external ? 1 : 0,
        unknown_certificates: r.unknownCertificates ?? null,
        created_at: r.createdAt.getTime(),
        revoked_at: r.revokedAt?.getTime() ?? null,
        revocation_reason: r.revocationReason ?? null,
      })
      .execute();
  }

  /** `lock: 'share'` keeps the row from changing (a cascade revoking it) until the transaction ends. */
  async get(id: string, options: { lock?: boolean | 'share' } = {}): Promise<CaRecord | undefined> {
    let query = this.q.db.selectFrom('cas').selectAll().where('id', '=', id);
    if (options.lock && this.q.dialect === 'postgres') query = options.lock === 'share' ? query.forShare() : query.forUpdate();
    const row = await query.executeTakeFirst();
    return row && toCa(row);
  }

  async all(): Promise<CaRecord[]> {
    const rows = await this.q.db.selectFrom('cas').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(toCa);
  }

  async revoke(ids: string[], at: Date, reason?: string): Promise<void> {
    for (const part of chunks(ids)) {
      await this.q.db
        .updateTable('cas')
        .set({ status: 'REVOKED', revoked_at: at.getTime(), revocation_reason: reason ?? null })
        .where('id', 'in', part)
        .where('status', '!=', 'REVOKED')
        .execute();
    }
  }

  /** An issuing CA rotation left behind, once nothing depends on it: no longer trusted. */
  async retire(id: string): Promise<void> {
    await this.q.db.updateTable('cas').set({ status: 'RETIRED' }).where('id', '=', id).where('status', '=', 'ACTIVE').execute();
  }

  async setUnknownCertificatePolicy(id: string, policy: UnknownCertificatePolicy): Promise<void> {
    await this.q.db.updateTable('cas').set({ unknown_certificates: policy }).where('id', '=', id).execute();
  }

  /** Revoked CAs directly below `parentId`: entries of the parent's CRL. */
  async revokedChildren(parentId: string, now: Date): Promise<{ serial: SerialHex; revokedAt: Date; revocationReason?: string }[]> {
    const rows = await this.q.db
      .selectFrom('cas')
      .select(['serial', 'revoked_at', 'revocation_reason'])
      .where('parent_id', '=', parentId)
      .where('status', '=', 'REVOKED')
      .where('not_after', '>', now.getTime())
      .execute();
    return rows.map((r) => ({ serial: r.serial as SerialHex, revokedAt: toDate(r.revoked_at!), revocationReason: orUndefined(r.revocation_reason) }));
  }
}
