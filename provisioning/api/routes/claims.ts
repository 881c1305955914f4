// Claim batches: a production batch's claim certificate, created (returned once with its key
// when the service made it), listed, and revoked. Operators run them; readers see them.
import type { FastifyInstance, RawServerBase } from 'fastify';
import type { NewClaimBatch } from '../../claims/service.js';
import { OPERATORS, READERS, access } from '../access.js';
import type { ApiDeps } from '../context.js';
import { bodies, claimBodies, params } from '../schemas.js';
import { claimBatchJson } from '../views.js';

type BatchParams = { Params: { batchId: string } };

export function claimRoutes<S extends RawServerBase>(app: FastifyInstance<S>, deps: ApiDeps): void {
  const { registry } = deps;

  app.post<{ Body: NewClaimBatch }>('/v1/claim-batches', { schema: { body: claimBodies.createBatch }, ...access(OPERATORS) }, async (request, reply) => {
    const { batch, chainPem, keyPem } = await deps.claims.createBatch(request.body, request.actor!);
    return reply.status(201).send({ ...claimBatchJson(batch), chain: chainPem, ...(keyPem ? { key: keyPem } : {}) });
  });

  app.get('/v1/claim-batches', access(READERS), async () => ({ batches: (await registry.claims.list()).map((b) => claimBatchJson(b)) }));

  app.get<BatchParams>('/v1/claim-batches/:batchId', { schema: { params: params.claimBatch }, ...access(READERS) }, async (request) => {
    const batch = await registry.claims.get(request.params.batchId);
    return claimBatchJson(batch, await registry.claims.counts(batch.id));
  });

  app.post<BatchParams & { Body: { reason?: string } | undefined }>(
    '/v1/claim-batches/:batchId/revoke',
    { schema: { params: params.claimBatch, body: bodies.reason }, ...access(OPERATORS) },
    async (request) => claimBatchJson(await registry.claims.revoke(request.params.batchId, request.actor!, request.body?.reason)),
  );
}
