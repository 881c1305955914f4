// Small tables: registration codes for bring-your-own CAs, and the broker's sightings.
import type { JsonObject, Sighting, SightingKind } from '../model.js';
import { orUndefined, toDate, type QueryContext } from './executor.js';

export class RegistrationCodeQueries {
  constructor(private readonly q: QueryContext) {}

  async insert(code: string, at: Date, expiresAt: Date): Promise<void> {
    await this.q.db.insertInto('registration_codes').values({ code, created_at: at.getTime(), expires_at: expiresAt.getTime(), used_at: null }).execute();
  }

  /** Marks an unused, unexpired code used; returns whether it was one. */
  async consume(code: string, at: Date): Promise<boolean> {
    const result = await this.q.db
      .updateTable('registration_codes')
      .set({ used_at: at.getTime() })
      .where('code', '=', code)
      .where('used_at', 'is', null)
      .where('expires_at', '>', at.getTime())
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}

export class SightingQueries {
  constructor(private readonly q: QueryContext) {}

  async record(s: Omit<Sighting, 'id'>): Promise<void> {
    await this.q.db
      .insertInto('sightings')
      .values({ at: s.at.getTime(), kind: s.kind, fingerprint: s.fingerprint ?? null, device_id: s.deviceId ?? null, client_id: s.clientId ?? null, details: JSON.stringify(s.details) })
      .execute();
  }

  async find(filter: { kind?: SightingKind; since?: Date; limit: number }): Promise<Sighting[]> {
    let query = this.q.db.selectFrom('sightings').selectAll();
    if (filter.kind) query = query.where('kind', '=', filter.kind);
    if (filter.since) query = query.where('at', '>=', filter.since.getTime());
    const rows = await query.orderBy('id', 'desc').limit(filter.limit).execute();
    return rows.map((r) => ({
      id: Number(r.id),
      at: toDate(r.at),
      kind: r.kind as SightingKind,
      fingerprint: orUndefined(r.fingerprint),
      deviceId: orUndefined(r.device_id),
      clientId: orUndefined(r.client_id),
      details: JSON.parse(r.details) as JsonObject,
    }));
  }
}
