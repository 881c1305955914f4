// The provisioning API (contract v1) over HTTPS. Handlers are thin: schema-checked input,
// one call into the provisioning service or registry, a view out. Errors go through one
// handler that maps them to coded responses.
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import type { Actor } from '../../registry/model.js';
import { operatorAuthenticator } from './auth.js';
import type { ApiDeps } from './context.js';
import { ApiError, toApiError } from './errors.js';
import { auditRoutes } from './routes/audit.js';
import { breakGlassRoutes } from './routes/break-glass.js';
import { brokerRoutes } from './routes/broker.js';
import { caCrlRoute, caRoutes } from './routes/cas.js';
import { certificateRoutes } from './routes/certificates.js';
import { claimRoutes } from './routes/claims.js';
import { deviceRoutes } from './routes/devices.js';
import { groupRoutes } from './routes/groups.js';
import { FORMATS } from './schemas.js';

export type { ApiDeps } from './context.js';

export interface ApiOptions {
  tls: { key: string; cert: string };
}

export async function buildApi(options: ApiOptions, deps: ApiDeps) {
  const logger: FastifyBaseLogger = deps.log;
  const app = Fastify({
    https: { key: options.tls.key, cert: options.tls.cert, minVersion: 'TLSv1.2' },
    loggerInstance: logger,
    // Scrapes and probes would drown the access log.
    logController: new LogController({ disableRequestLogging: (request) => request.url === '/metrics' || request.url === '/healthz' || request.url === '/readyz' }),
    bodyLimit: 64 * 1024,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false, formats: FORMATS } },
  });

  // An empty JSON body means "no body" (a revocation without a reason); anything else goes
  // to Fastify's own parser, which refuses prototype poisoning.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string; // parseAs: 'string'
    if (text.trim() === '') return done(null, undefined);
    void parseJson(request, text, done);
  });

  app.setErrorHandler((error, request, reply) => {
    const apiError = toApiError(error);
    if (apiError.status >= 500) request.log.error({ err: error }, 'request failed');
    void reply.status(apiError.status).send({ error: { code: apiError.code, message: apiError.message } });
  });
  app.setNotFoundHandler((_request, reply) => {
    const error = new ApiError('not_found');
    void reply.status(error.status).send({ error: { code: error.code, message: error.message } });
  });

  // Public: what devices, relying parties and scrapers need without an operator token.
  app.get('/v1/ca/bundle', (_request, reply) => reply.type('application/x-pem-file').send(deps.caBundle()));
  app.get('/v1/crl', (_request, reply) => reply.type('application/pkix-crl').send(deps.crls.der('default')));
  caCrlRoute(app, deps);
  app.get('/metrics', async (_request, reply) => reply.type(deps.metrics.contentType).send(await deps.metrics.metrics()));
  // Health: the process is up. Readiness: it should get traffic (a load balancer's check).
  app.get('/healthz', () => ({ status: 'ok', node: deps.node }));
  app.get('/readyz', async () => {
    const readiness = await deps.readiness();
    if (!readiness.ready) throw new ApiError(readiness.code);
    return { status: 'ready', node: deps.node };
  });

  const authenticate = operatorAuthenticator(deps.registry.operators);
  await app.register((operator, _opts, done) => {
    operator.decorateRequest('actor', null);
    operator.addHook('onRequest', async (request) => {
      request.actor = await authenticate(request);
    });
    deviceRoutes(operator, deps);
    certificateRoutes(operator, deps);
    caRoutes(operator, deps);
    groupRoutes(operator, deps);
    auditRoutes(operator, deps);
    brokerRoutes(operator, deps);
    breakGlassRoutes(operator, deps);
    claimRoutes(operator, deps);
    done();
  });

  return app;
}

export type ApiServer = Awaited<ReturnType<typeof buildApi>>;

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller of an operator route. */
    actor: Actor | null;
  }
}
