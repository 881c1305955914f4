// Certificate authorities: the hierarchy, bring-your-own CAs, blast radius, cascading
// revocation and each CA's CRL.
import type { FastifyInstance, RawServerBase } from 'fastify';
import { RegistryError } from '../../../registry/errors.js';
import type { UnknownCertificatePolicy } from '../../../registry/model.js';
import { ADMINS, PUBLIC, READERS, access } from '../access.js';
import type { ApiDeps } from '../context.js';
import { bodies, params } from '../schemas.js';
import { caJson, policyJson, rotationJson } from '../views.js';

type CaParams = { Params: { caId: string } };

export function caRoutes<S extends RawServerBase>(app: FastifyInstance<S>, deps: ApiDeps): void {
  const { registry } = deps;

  const issuingOf = (id: string) => {
    const { current, next, old, retired } = deps.rotation.slots;
    return [current, next, ...old, ...retired].find((c) => c?.caId === id);
  };
  app.get('/v1/cas', access(READERS), async () => ({ cas: (await registry.authorities.list()).map((c) => caJson(c, issuingOf(c.id))) }));
  app.get('/v1/ca/rotation', access(READERS), async () => rotationJson(deps.rotation.slots, await deps.rotation.thresholds()));

  app.post<{ Body: { name: string; parent?: string } }>('/v1/cas', { schema: { body: bodies.createCa }, ...access(ADMINS) }, async (request, reply) => {
    const ca = await deps.provisioning.createCa(request.body.name, request.body.parent, request.actor!);
    return reply.status(201).send(caJson(ca));
  });

  app.post('/v1/cas/registration-codes', access(ADMINS), async (request, reply) => {
    const { code, expiresAt } = await registry.authorities.issueRegistrationCode(request.actor!);
    return reply.status(201).send({ code, expiresAt: expiresAt.toISOString() });
  });

  app.post<{ Body: { name: string; certificate: string; verificationCertificate: string; unknownCertificates?: UnknownCertificatePolicy } }>(
    '/v1/cas/external',
    { schema: { body: bodies.externalCa }, ...access(ADMINS) },
    async (request, reply) => {
      const { name, certificate, verificationCertificate, unknownCertificates } = request.body;
      const ca = await deps.provisioning.registerExternalCa(
        { id: name, certificatePem: certificate, verificationCertificatePem: verificationCertificate, unknownCertificates: unknownCertificates ?? 'refuse' },
        request.actor!,
      );
      return reply.status(201).send(caJson(ca));
    },
  );

  app.get<CaParams>('/v1/cas/:caId', { schema: { params: params.ca }, ...access(READERS) }, async (request) => caJson(await registry.authorities.get(request.params.caId), issuingOf(request.params.caId)));

  app.put<CaParams & { Body: { unknownCertificates: UnknownCertificatePolicy } }>(
    '/v1/cas/:caId/unknown-certificates',
    { schema: { params: params.ca, body: bodies.unknownCertificates }, ...access(ADMINS) },
    async (request) => caJson(await registry.authorities.setUnknownCertificatePolicy(request.params.caId, request.body.unknownCertificates, request.actor!)),
  );

  type PolicyBody = { certificateLifetimeSeconds?: number; renewalWindowSeconds?: number; renewalGraceSeconds?: number; requireNewKey?: boolean };
  const lifetime = deps.defaultCertificateLifetimeMs;
  app.get<CaParams>('/v1/cas/:caId/policy', { schema: { params: params.ca }, ...access(READERS) }, async (request) => {
    await registry.authorities.get(request.params.caId); // 404 for an unknown CA
    return policyJson(request.params.caId, await registry.policies.get(request.params.caId), lifetime);
  });
  app.put<CaParams & { Body: PolicyBody }>('/v1/cas/:caId/policy', { schema: { params: params.ca, body: bodies.caPolicy }, ...access(ADMINS) }, async (request) => {
    const b = request.body;
    const seconds = (s: number | undefined) => (s === undefined ? undefined : s * 1000);
    const policy = await registry.policies.set(
      request.params.caId,
      {
        certificateLifetimeMs: seconds(b.certificateLifetimeSeconds),
        ...(b.renewalWindowSeconds !== undefined ? { renewalWindowMs: b.renewalWindowSeconds * 1000 } : {}),
        ...(b.renewalGraceSeconds !== undefined ? { renewalGraceMs: b.renewalGraceSeconds * 1000 } : {}),
        ...(b.requireNewKey !== undefined ? { requireNewKey: b.requireNewKey } : {}),
      },
      request.actor!,
    );
    return policyJson(request.params.caId, policy, lifetime);
  });

  app.get<CaParams>('/v1/cas/:caId/blast-radius', { schema: { params: params.ca }, ...access(READERS) }, (request) => {
    const radius = deps.graph.blastRadius(request.params.caId);
    if (!radius) throw new RegistryError('ca_not_found', request.params.caId);
    return radius;
  });

  app.post<CaParams & { Body: { reason?: string } | undefined }>(
    '/v1/cas/:caId/revoke',
    { schema: { params: params.ca, body: bodies.reason }, ...access(ADMINS) },
    async (request) => {
      const result = await registry.authorities.revoke(request.params.caId, request.actor!, request.body?.reason);
      return { ...caJson(result.ca), revoked: { cas: result.cas, certificates: result.certificates } };
    },
  );
}

/** Public: a CA's CRL, DER, as its certificates' distribution point names it. */
export function caCrlRoute<S extends RawServerBase>(app: FastifyInstance<S>, deps: ApiDeps): void {
  app.get<CaParams>('/v1/cas/:caId/crl', { schema: { params: params.ca }, ...access(PUBLIC) }, async (request, reply) => {
    const der = deps.crls.der(request.params.caId);
    if (!der) throw new RegistryError((await deps.registry.authorities.get(request.params.caId)) ? 'ca_cannot_issue' : 'ca_not_found', 'this CA publishes no CRL here');
    return reply.type('application/pkix-crl').send(der);
  });
}
