// POST /v1/batches: a factory line's batch, NDJSON lines {"id", "csr"} in, one NDJSON result
// per line out as it is ready — a certificate, or a coded error; one bad line never fails
// the batch. The Idempotency-Key header makes a retry return the same certificates.
import { Readable } from 'node:stream';
import type { FastifyInstance, RawServerBase } from 'fastify';
import { actorName } from '../../../registry/changes.js';
import { isDeviceId, type DeviceId } from '../../../registry/ids.js';
import { ndjsonLines, runBatch, type RawLine } from '../../batches.js';
import { PROVISIONERS, access } from '../access.js';
import type { ApiDeps } from '../context.js';
import { ApiError, toApiError } from '../errors.js';
import { queries } from '../schemas.js';
import { certificateJson } from '../views.js';

const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_CSR = 32768;

type Line = { id: DeviceId; csr: string };

/** The line as the schema would have it, or the code that says why not. */
function parseLine(text: string): Line {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ApiError('malformed_json');
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new ApiError('invalid_body', 'a line is a JSON object {"id", "csr"}');
  const { id, csr, ...rest } = value as Record<string, unknown>;
  if (Object.keys(rest).length > 0) throw new ApiError('invalid_body', `unknown property ${Object.keys(rest)[0]}`);
  if (typeof id !== 'string') throw new ApiError('invalid_body', 'id must be a string');
  if (!isDeviceId(id)) throw new ApiError('invalid_device_id');
  if (typeof csr !== 'string' || csr.length === 0 || csr.length > MAX_CSR) throw new ApiError('invalid_body', `csr must be a string of 1–${MAX_CSR} characters`);
  return { id, csr };
}

export function batchRoutes<S extends RawServerBase>(app: FastifyInstance<S>, deps: ApiDeps): void {
  // The body is handed over as the raw stream: it is read line by line as results go out.
  app.addContentTypeParser('application/x-ndjson', (_request, payload, done) => done(null, payload));

  app.post<{ Querystring: { ca?: string }; Body: NodeJS.ReadableStream }>('/v1/batches', { schema: { querystring: queries.batch }, ...access(PROVISIONERS) }, async (request, reply) => {
    if (!request.headers['content-type']?.startsWith('application/x-ndjson')) throw new ApiError('unsupported_media_type', 'send NDJSON with Content-Type: application/x-ndjson');
    const key = request.headers['idempotency-key'];
    if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key)) throw new ApiError('idempotency_key_invalid');
    const actor = request.actor!;
    // Keys are the caller's own: another caller's batch of the same name is another batch.
    // Without ?ca= the issuing CA that signs now (rotation's current slot).
    const batch = { requestId: `${actorName(actor)}:${key}`, caId: request.query.ca ?? deps.provisioning.signingCa() };
    await deps.provisioning.assertCanIssue(batch.caId); // a batch for a CA that cannot issue is refused whole
    const log = request.log;

    const handle = async (raw: RawLine) => {
      let id: string | undefined;
      try {
        if ('tooLong' in raw) throw new ApiError('line_too_long');
        const line = parseLine(raw.text);
        id = line.id;
        const enrolled = await deps.provisioning.enrollBatchLine(line.id, line.csr, batch, actor);
        return { line: raw.line, id, ...certificateJson(enrolled.record), certificate: enrolled.certificatePem, ...(enrolled.replayed ? { replayed: true } : {}) };
      } catch (error) {
        const apiError = toApiError(error);
        if (apiError.status >= 500) log.error({ err: error, line: raw.line }, 'batch line failed');
        return { line: raw.line, ...(id ? { id } : {}), error: { code: apiError.code, message: apiError.message } };
      }
    };
    const results = Readable.from(runBatch(ndjsonLines(request.body as AsyncIterable<Buffer>), handle));
    return reply.type('application/x-ndjson').header('cache-control', 'no-store').send(results);
  });
}
