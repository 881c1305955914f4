// The broker's operations: phased enforcement (who would be cut off), bans, and reloading
// trust, certificates and CRLs without a restart.
import type { FastifyInstance, RawServerBase } from 'fastify';
import type { EnforcementMode } from '../../../registry/model.js';
import { OPERATORS, READERS, access } from '../access.js';
import type { ApiDeps } from '../context.js';
import { bodies, params } from '../schemas.js';

export function brokerRoutes<S extends RawServerBase>(app: FastifyInstance<S>, deps: ApiDeps): void {
  const { registry, broker } = deps;

  app.get('/v1/broker/enforcement', access(READERS), () => ({
    listener: broker.enforcement.listener,
    monitoredGroups: broker.enforcement.monitoredGroups,
    // Exactly who enforcement would cut off, from what this broker saw in monitor mode.
    wouldRefuse: broker.enforcement.wouldRefuse(),
  }));

  app.put<{ Body: { mode: EnforcementMode } }>('/v1/broker/enforcement', { schema: { body: bodies.enforcement }, ...access(OPERATORS) }, async (request) => {
    await registry.enforcement.setListenerMode(request.body.mode, request.actor!);
    return { listener: request.body.mode };
  });

  app.put<{ Params: { groupId: string }; Body: { mode: EnforcementMode } }>(
    '/v1/groups/:groupId/enforcement',
    { schema: { params: params.group, body: bodies.enforcement }, ...access(OPERATORS) },
    async (request) => {
      await registry.enforcement.setGroupMode(request.params.groupId, request.body.mode, request.actor!);
      return { group: request.params.groupId, mode: request.body.mode };
    },
  );

  app.get('/v1/broker/bans', access(READERS), () => ({
    bans: broker.abuse.bans().map((b) => ({ clientId: b.clientId, identity: b.identity, seconds: Math.ceil((b.until - b.since) / 1000) })),
  }));

  app.delete<{ Params: { clientId: string } }>('/v1/broker/bans/:clientId', { schema: { params: params.clientId }, ...access(OPERATORS) }, async (request) => {
    const lifted = broker.abuse.unban(request.params.clientId);
    await registry.recordAction(request.actor!, { action: 'broker.unbanned', subjectType: 'broker', subjectId: request.params.clientId, details: { lifted } });
    return { clientId: request.params.clientId, lifted };
  });

  app.post('/v1/broker/reload', access(OPERATORS), async (request) => {
    const summary = await deps.reload();
    await registry.recordAction(request.actor!, { action: 'broker.reloaded', subjectType: 'broker', subjectId: 'tls', details: summary as Record<string, unknown> });
    return summary;
  });
}
