// Operators (people and tools with API tokens), settings, and break-glass grants.
import type { Selectable } from 'kysely';
import type { DeviceId } from '../ids.js';
import type { Grant, Operator } from '../model.js';
import type { GrantsTable } from '../schema.js';
import { orUndefined, toDate, toOptionalDate, type QueryContext } from './executor.js';

export class OperatorQueries {
  constructor(private readonly q: QueryContext) {}

  async insert(operator: Operator, tokenSha256: string): Promise<boolean> {
    const result = await this.q.db
      .insertInto('operators')
      .values({ name: operator.name, token_sha256: tokenSha256, roles: JSON.stringify(operator.roles), created_at: operator.createdAt.getTime(), disabled_at: null })
      .onConflict((c) => c.doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
  }

  async byTokenHash(tokenSha256: string): Promise<Operator | undefined> {
    const row = await this.q.db.selectFrom('operators').selectAll().where('token_sha256', '=', tokenSha256).executeTakeFirst();
    return row && { name: row.name, roles: JSON.parse(row.roles) as string[], createdAt: toDate(row.created_at), disabledAt: toOptionalDate(row.disabled_at) };
  }

  async all(): Promise<Operator[]> {
    const rows = await this.q.db.selectFrom('operators').selectAll().orderBy('name').execute();
    return rows.map((row) => ({ name: row.name, roles: JSON.parse(row.roles) as string[], createdAt: toDate(row.created_at), disabledAt: toOptionalDate(row.disabled_at) }));
  }
}

export class SettingQueries {
  constructor(private readonly q: QueryContext) {}

  async get(key: string): Promise<string | undefined> {
    return (await this.q.db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst())?.value;
  }

  async set(key: string, value: string, at: Date): Promise<void> {
    await this.q.db
      .insertInto('settings')
      .values({ key, value, updated_at: at.getTime() })
      .onConflict((c) => c.column('key').doUpdateSet({ value, updated_at: at.getTime() }))
      .execute();
  }
}

function toGrant(row: Selectable<GrantsTable>): Grant {
  return {
    id: row.id,
    deviceId: row.device_id as DeviceId,
    fingerprint: orUndefined(row.fingerprint),
    waives: row.waives,
    reason: row.reason,
    durationMs: Number(row.duration_ms),
    requestedBy: row.requested_by,
    approvedBy: orUndefined(row.approved_by),
    createdAt: toDate(row.created_at),
    approvedAt: toOptionalDate(row.approved_at),
    expiresAt: toOptionalDate(row.expires_at),
    closedBy: orUndefined(row.closed_by),
    closedAt: toOptionalDate(row.closed_at),
  };
}

export class GrantQueries {
  constructor(private readonly q: QueryContext) {}

  async insert(g: Grant): Promise<void> {
    await this.q.db
      .insertInto('grants')
      .values({
        id: g.id,
        device_id: g.deviceId,
        fingerprint: g.fingerprint ?? null,
        waives: g.waives,
        reason: g.reason,
        duration_ms: g.durationMs,
        requested_by: g.requestedBy,
        approved_by: null,
        created_at: g.createdAt.getTime(),
        approved_at: null,
        expires_at: null,
        closed_by: null,
        closed_at: null,
      })
      .execute();
  }

  async get(id: string, options: { lock?: boolean } = {}): Promise<Grant | undefined> {
    let query = this.q.db.selectFrom('grants').selectAll().where('id', '=', id);
    if (options.lock && this.q.dialect === 'postgres') query = query.forUpdate();
    const row = await query.executeTakeFirst();
    return row && toGrant(row);
  }

  async approve(id: string, by: string, at: Date, expiresAt: Date): Promise<void> {
    await this.q.db.updateTable('grants').set({ approved_by: by, approved_at: at.getTime(), expires_at: expiresAt.getTime() }).where('id', '=', id).execute();
  }

  async close(id: string, by: string, at: Date): Promise<void> {
    await this.q.db.updateTable('grants').set({ closed_by: by, closed_at: at.getTime() }).where('id', '=', id).execute();
  }

  async all(limit = 1000): Promise<Grant[]> {
    return (await this.q.db.selectFrom('grants').selectAll().orderBy('created_at', 'desc').limit(limit).execute()).map(toGrant);
  }

  /** Approved grants not closed and not yet expired at `now`: what the broker may honour. */
  async active(now: Date): Promise<Grant[]> {
    const rows = await this.q.db
      .selectFrom('grants')
      .selectAll()
      .where('approved_at', 'is not', null)
      .where('closed_at', 'is', null)
      .where('expires_at', '>', now.getTime())
      .execute();
    return rows.map(toGrant);
  }
}
