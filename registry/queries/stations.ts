// Factory stations and their certificates.
import type { Selectable } from 'kysely';
import type { Fingerprint, SerialHex } from '../ids.js';
import type { Station, StationStatus } from '../model.js';
import type { StationsTable } from '../schema.js';
import { orUndefined, toDate, toOptionalDate, type QueryContext } from './executor.js';

function toStation(row: Selectable<StationsTable>): Station {
  return {
    name: row.name,
    roles: JSON.parse(row.roles) as string[],
    status: row.status as StationStatus,
    serial: row.serial as SerialHex,
    fingerprint: row.fingerprint as Fingerprint,
    caId: row.ca_id,
    notBefore: toDate(row.not_before),
    notAfter: toDate(row.not_after),
    pem: row.pem,
    createdAt: toDate(row.created_at),
    revokedAt: toOptionalDate(row.revoked_at),
    revocationReason: orUndefined(row.revocation_reason),
  };
}

export class StationQueries {
  constructor(private readonly q: QueryContext) {}

  /** Inserts unless the name exists; returns whether it did. */
  async insert(s: Station): Promise<boolean> {
    const result = await this.q.db
      .insertInto('stations')
      .values({
        name: s.name,
        roles: JSON.stringify(s.roles),
        status: s.status,
        serial: s.serial,
        fingerprint: s.fingerprint,
        ca_id: s.caId,
        not_before: s.notBefore.getTime(),
        not_after: s.notAfter.getTime(),
        pem: s.pem,
        created_at: s.createdAt.getTime(),
        revoked_at: null,
        revocation_reason: null,
      })
      .onConflict((c) => c.column('name').doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
  }

  async get(name: string, options: { lock?: boolean } = {}): Promise<Station | undefined> {
    let query = this.q.db.selectFrom('stations').selectAll().where('name', '=', name);
    if (options.lock && this.q.dialect === 'postgres') query = query.forUpdate();
    const row = await query.executeTakeFirst();
    return row && toStation(row);
  }

  async byFingerprint(fingerprint: Fingerprint): Promise<Station | undefined> {
    const row = await this.q.db.selectFrom('stations').selectAll().where('fingerprint', '=', fingerprint).executeTakeFirst();
    return row && toStation(row);
  }

  async all(): Promise<Station[]> {
    return (await this.q.db.selectFrom('stations').selectAll().orderBy('name').execute()).map(toStation);
  }

  async revoke(name: string, at: Date, reason?: string): Promise<void> {
    await this.q.db.updateTable('stations').set({ status: 'REVOKED', revoked_at: at.getTime(), revocation_reason: reason ?? null }).where('name', '=', name).execute();
  }

  /** Revoked station certificates of a CA that have not expired by `now`: entries of its CRL. */
  async revokedUnder(caId: string, now: Date): Promise<{ serial: SerialHex; revokedAt: Date; revocationReason?: string }[]> {
    const rows = await this.q.db
      .selectFrom('stations')
      .select(['serial', 'revoked_at', 'revocation_reason'])
      .where('ca_id', '=', caId)
      .where('status', '=', 'REVOKED')
      .where('not_after', '>', now.getTime())
      .execute();
    return rows.map((r) => ({ serial: r.serial as SerialHex, revokedAt: toDate(r.revoked_at!), revocationReason: orUndefined(r.revocation_reason) }));
  }
}
