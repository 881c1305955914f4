// A device renews its own certificate over mutual TLS: the certificate it presents is the
// credential, the CSR brings the key (new or, if the CA's policy allows, the same).
import type { FastifyInstance, RawServerBase } from 'fastify';
import { RENEWING_DEVICES, access } from '../access.js';
import type { ApiDeps } from '../context.js';
import type { DevicePrincipal } from '../principals.js';
import { bodies } from '../schemas.js';
import { enrollmentJson } from '../views.js';

/** The device behind a renewal route (the route admits devices only). */
export const renewingDevice = (principal: unknown) => principal as DevicePrincipal;

export function renewalRoutes<S extends RawServerBase>(app: FastifyInstance<S>, deps: ApiDeps): void {
  app.post<{ Body: { csr: string } }>('/v1/renew', { schema: { body: bodies.renew }, ...access(RENEWING_DEVICES) }, async (request, reply) => {
    const device = renewingDevice(request.principal);
    const renewed = await deps.provisioning.renew(device.record.serial, request.body.csr, request.actor!);
    return reply.status(201).send(enrollmentJson(renewed));
  });
}
