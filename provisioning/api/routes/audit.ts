// The audit log, filtered and paginated, and the fleet report.
import type { FastifyInstance, RawServerBase } from 'fastify';
import { parseSerial } from '../../../registry/ids.js';
import { READERS, access } from '../access.js';
import type { ApiDeps } from '../context.js';
import { queries } from '../schemas.js';
import { auditJson } from '../views.js';

interface AuditQuery {
  device?: string;
  certificate?: string;
  actor?: string;
  since?: string;
  until?: string;
  after?: string;
  limit?: string;
}

export function auditRoutes<S extends RawServerBase>(app: FastifyInstance<S>, deps: ApiDeps): void {
  app.get<{ Querystring: AuditQuery }>('/v1/audit', { schema: { querystring: queries.audit }, ...access(READERS) }, async (request) => {
    const q = request.query;
    const page = await deps.registry.auditLog.page({
      deviceId: q.device,
      certificateSerial: q.certificate ? parseSerial(q.certificate) : undefined,
      actor: q.actor,
      since: q.since ? new Date(q.since) : undefined,
      until: q.until ? new Date(q.until) : undefined,
      afterId: q.after ? Number(q.after) : undefined,
      limit: q.limit ? Number(q.limit) : undefined,
    });
    return { entries: page.entries.map(auditJson), ...(page.next !== undefined ? { next: String(page.next) } : {}) };
  });

  app.get<{ Querystring: { days?: string } }>('/v1/reports/audit', { schema: { querystring: queries.report }, ...access(READERS) }, (request) =>
    deps.registry.reports.fleet(request.query.days ? Number(request.query.days) : undefined),
  );
}
