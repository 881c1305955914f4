// One certificate: read it, revoke it (final), deactivate or activate it.
import type { FastifyInstance, RawServerBase } from 'fastify';
import { RegistryError } from '../../../registry/errors.js';
import { parseSerial, type SerialHex } from '../../../registry/ids.js';
import type { CertificateStatus } from '../../../registry/model.js';
import { DEVICE_READERS, OPERATORS, access } from '../access.js';
import type { ApiDeps } from '../context.js';
import { ApiError } from '../errors.js';
import { bodies, params } from '../schemas.js';
import { certificateJson } from '../views.js';

type SerialParams = { Params: { serial: string } };

function serialOf(value: string): SerialHex {
  const serial = parseSerial(value);
  if (!serial) throw new ApiError('invalid_serial');
  return serial;
}

export function certificateRoutes<S extends RawServerBase>(app: FastifyInstance<S>, deps: ApiDeps): void {
  app.get<SerialParams>('/v1/certificates/:serial', { schema: { params: params.serial }, ...access(DEVICE_READERS) }, async (request) => {
    const serial = serialOf(request.params.serial);
    const record = await deps.registry.lifecycle.certificate(serial);
    if (!record) throw new RegistryError('certificate_not_found', serial);
    return certificateJson(record);
  });

  const moves: [string, CertificateStatus][] = [
    ['revoke', 'REVOKED'],
    ['deactivate', 'INACTIVE'],
    ['activate', 'ACTIVE'],
  ];
  for (const [action, status] of moves) {
    app.post<SerialParams & { Body: { reason?: string } | undefined }>(
      `/v1/certificates/:serial/${action}`,
      { schema: { params: params.serial, body: bodies.reason }, ...access(OPERATORS) },
      async (request) => certificateJson(await deps.registry.lifecycle.setCertificateStatus(serialOf(request.params.serial), status, request.actor!, request.body?.reason)),
    );
  }
}
