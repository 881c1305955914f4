import type { AuditEntry, AuditInput, JsonObject, SubjectType } from '../model.js';
import { insertRows, orUndefined, toDate, type QueryContext } from './executor.js';

export interface AuditFilter {
  deviceId?: string;
  certificateSerial?: string;
  actor?: string;
  subjectType?: SubjectType;
  subjectId?: string;
  since?: Date;
  until?: Date;
  /** Keyset pagination: entries with a larger id than this. */
  afterId?: number;
  limit: number;
}

const AUDIT_COLUMNS = ['at', 'actor', 'action', 'subject_type', 'subject_id', 'device_id', 'certificate_serial', 'reason', 'details'] as const;

export class AuditQueries {
  constructor(private readonly q: QueryContext) {}

  async append(at: Date, actor: string, entries: AuditInput[]): Promise<void> {
    if (entries.length === 0) return;
    const rows = entries.map((e) => [at.getTime(), actor, e.action, e.subjectType, e.subjectId, e.deviceId ?? null, e.certificateSerial ?? null, e.reason ?? null, JSON.stringify(e.details)]);
    await insertRows(this.q, 'audit', AUDIT_COLUMNS, rows);
  }

  async find(filter: AuditFilter): Promise<AuditEntry[]> {
    let query = this.q.db.selectFrom('audit').selectAll();
    if (filter.deviceId) query = query.where('device_id', '=', filter.deviceId);
    if (filter.certificateSerial) query = query.where('certificate_serial', '=', filter.certificateSerial);
    if (filter.actor) query = query.where('actor', '=', filter.actor);
    if (filter.subjectType) query = query.where('subject_type', '=', filter.subjectType);
    if (filter.subjectId) query = query.where('subject_id', '=', filter.subjectId);
    if (filter.since) query = query.where('at', '>=', filter.since.getTime());
    if (filter.until) query = query.where('at', '<', filter.until.getTime());
    if (filter.afterId !== undefined) query = query.where('id', '>', filter.afterId);
    const rows = await query.orderBy('id').limit(filter.limit).execute();
    return rows.map((r) => ({
      id: Number(r.id),
      at: toDate(r.at),
      actor: r.actor,
      action: r.action,
      subjectType: r.subject_type as SubjectType,
      subjectId: r.subject_id,
      deviceId: orUndefined(r.device_id),
      certificateSerial: orUndefined(r.certificate_serial),
      reason: orUndefined(r.reason),
      details: JSON.parse(r.details) as JsonObject,
    }));
  }
}
