// Break-glass grants: opened by one operator, approved by another, used by the broker, ended
// by time or by hand.
import type { FastifyInstance, RawServerBase } from 'fastify';
import type { DeviceId } from '../../../registry/ids.js';
import { toFingerprint } from '../../../registry/ids.js';
import { grantStatus, type Grant } from '../../../registry/model.js';
import { isWaivable, PINNED_ONLY } from '../../../registry/waivers.js';
import { OPERATORS, READERS, access } from '../access.js';
import type { ApiDeps } from '../context.js';
import { ApiError } from '../errors.js';
import { bodies, params } from '../schemas.js';

interface GrantBody {
  deviceId: string;
  fingerprint?: string;
  waives: string;
  reason: string;
  durationSeconds: number;
}

export function breakGlassRoutes<S extends RawServerBase>(app: FastifyInstance<S>, deps: ApiDeps): void {
  const { grants } = deps.registry;
  const json = (g: Grant) => ({
    id: g.id,
    deviceId: g.deviceId,
    ...(g.fingerprint ? { fingerprint: g.fingerprint } : {}),
    waives: g.waives,
    reason: g.reason,
    status: grantStatus(g, deps.clock()),
    durationSeconds: g.durationMs / 1000,
    requestedBy: g.requestedBy,
    ...(g.approvedBy ? { approvedBy: g.approvedBy, approvedAt: g.approvedAt!.toISOString(), expiresAt: g.expiresAt!.toISOString() } : {}),
    ...(g.closedBy ? { closedBy: g.closedBy, closedAt: g.closedAt!.toISOString() } : {}),
    createdAt: g.createdAt.toISOString(),
  });

  app.post<{ Body: GrantBody }>('/v1/break-glass', { schema: { body: bodies.grant }, ...access(OPERATORS) }, async (request, reply) => {
    const { deviceId, fingerprint, waives, reason, durationSeconds } = request.body;
    if (!isWaivable(waives)) throw new ApiError('grant_not_waivable', `${waives} cannot be waived`);
    if (PINNED_ONLY.includes(waives) && !fingerprint) throw new ApiError('grant_needs_fingerprint');
    if (durationSeconds * 1000 > deps.breakGlassMaxMs) throw new ApiError('grant_too_long', `at most ${deps.breakGlassMaxMs / 1000} s`);
    const grant = await grants.open({ deviceId: deviceId as DeviceId, fingerprint: fingerprint ? toFingerprint(fingerprint) : undefined, waives, reason, durationMs: durationSeconds * 1000 }, request.actor!);
    return reply.status(201).send(json(grant));
  });

  app.get('/v1/break-glass', access(READERS), async () => ({ grants: (await grants.list()).map(json) }));

  type GrantParams = { Params: { grantId: string } };
  app.get<GrantParams>('/v1/break-glass/:grantId', { schema: { params: params.grant }, ...access(READERS) }, async (request) => json(await grants.get(request.params.grantId)));
  app.post<GrantParams>('/v1/break-glass/:grantId/approve', { schema: { params: params.grant }, ...access(OPERATORS) }, async (request) => json(await grants.approve(request.params.grantId, request.actor!)));
  app.post<GrantParams>('/v1/break-glass/:grantId/close', { schema: { params: params.grant }, ...access(OPERATORS) }, async (request) => json(await grants.close(request.params.grantId, request.actor!)));
}
