// Server-side key generation, for principals holding the keygen role only: the service
// makes the device's key, certifies it, and returns it this once, encrypted with the
// caller's passphrase — PKCS#8 PEM, or PKCS#12 with the certificate and chain. The key is
// not stored and not logged (Fastify logs no bodies, and nothing here does).
import type { FastifyInstance, RawServerBase } from 'fastify';
import type { DeviceId } from '../../../registry/ids.js';
import { encryptedPkcs8Pem, pkcs12 } from '../../pki/key-export.js';
import { certificatesIn, derOf } from '../../pki/pem.js';
import { KEY_GENERATORS, access } from '../access.js';
import type { ApiDeps } from '../context.js';
import { bodies, params } from '../schemas.js';
import { enrollmentJson } from '../views.js';

type KeyRequest = { Params: { deviceId: string }; Body: { format: 'pkcs8' | 'pkcs12'; passphrase: string; ca?: string } };

export function keyRoutes<S extends RawServerBase>(app: FastifyInstance<S>, deps: ApiDeps): void {
  app.post<KeyRequest>('/v1/devices/:deviceId/keys', { schema: { params: params.device, body: bodies.generateKey }, ...access(KEY_GENERATORS) }, async (request, reply) => {
    const { format, passphrase, ca } = request.body;
    const { privateKey, ...enrollment } = await deps.provisioning.enrollWithGeneratedKey(request.params.deviceId as DeviceId, request.actor!, ca);
    const key =
      format === 'pkcs8'
        ? { key: encryptedPkcs8Pem(privateKey, passphrase) }
        : { pkcs12: pkcs12(privateKey, derOf(enrollment.certificatePem), certificatesIn(enrollment.chainPem).map(derOf), passphrase, enrollment.record.deviceId).toString('base64') };
    return reply.status(201).header('cache-control', 'no-store').send({ ...enrollmentJson(enrollment), format, ...key });
  });
}
