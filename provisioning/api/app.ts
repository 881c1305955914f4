// The provisioning API (contract v1 and beyond) over HTTPS, with a client certificate
// requested but not required: operators call it with a bearer token, factory stations and
// devices with their certificates. Handlers are thin: schema-checked input, one call into
// the provisioning service or registry, a view out. Errors go through one handler that maps
// them to coded responses. Every route declares who may call it (access.ts).
import { X509Certificate } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import type { Actor } from '../../registry/model.js';
import { ROLES, permits } from '../../registry/roles.js';
import { PUBLIC, READERS, access, requireAccessDeclarations } from './access.js';
import type { ApiDeps } from './context.js';
import { ApiError, toApiError } from './errors.js';
import { actorOf, principalResolver, type Principal, type PrincipalDirectory } from './principals.js';
import { auditRoutes } from './routes/audit.js';
import { batchRoutes } from './routes/batches.js';
import { breakGlassRoutes } from './routes/break-glass.js';
import { brokerRoutes } from './routes/broker.js';
import { caCrlRoute, caRoutes } from './routes/cas.js';
import { certificateRoutes } from './routes/certificates.js';
import { claimRoutes } from './routes/claims.js';
import { deviceRoutes } from './routes/devices.js';
import { estRoutes } from './routes/est.js';
import { groupRoutes } from './routes/groups.js';
import { keyRoutes } from './routes/keys.js';
import { renewalRoutes } from './routes/renewal.js';
import { stationRoutes } from './routes/stations.js';
import { FORMATS } from './schemas.js';

export type { ApiDeps } from './context.js';

export interface ApiTls {
  key: string;
  cert: string;
  /** CAs client certificates must chain to: the broker's client trust. */
  ca: string;
}

export interface ApiOptions {
  tls: ApiTls;
}

/** The secure context options, all of them every time: setSecureContext without `ca` would fall back to the public roots. */
const secureContext = (tls: ApiTls) => ({ key: tls.key, cert: tls.cert, ca: tls.ca, minVersion: 'TLSv1.2' as const });

/** A CA's subject as Node prints a peer's issuer ("CN=a, O=b"). */
const subjectLine = (pem: string) => new X509Certificate(pem).subject.split('\n').join(', ');

function directoryOf(deps: ApiDeps): PrincipalDirectory {
  const { registry } = deps;
  return {
    operators: registry.operators,
    stations: registry.stations,
    admissionRecord: (fingerprint) => registry.admissionRecord(fingerprint),
    renewalWindowMs: (caId) => deps.renewalWindowMs(caId),
    knownIssuer: async (issuer) => (await registry.authorities.list()).some((ca) => subjectLine(ca.pem) === issuer),
  };
}

export async function buildApi(options: ApiOptions, deps: ApiDeps) {
  const logger: FastifyBaseLogger = deps.log;
  const app = Fastify({
    // The TLS layer only asks for a certificate: its chain verdict is read per request, so a
    // caller with a bad certificate gets a coded answer rather than a failed handshake, and
    // callers with a token need none.
    https: { ...secureContext(options.tls), requestCert: true, rejectUnauthorized: false },
    loggerInstance: logger,
    // Scrapes and probes would drown the access log.
    logController: new LogController({ disableRequestLogging: (request) => request.url === '/metrics' || request.url === '/healthz' || request.url === '/readyz' }),
    bodyLimit: 64 * 1024,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false, formats: FORMATS } },
  });
  const declared = requireAccessDeclarations(app);

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

  // Authenticate, then authorize against the route's declared roles. Before the body is
  // read: a caller who may not make a call uploads nothing.
  const resolve = principalResolver(directoryOf(deps), deps.clock);
  app.decorateRequest('principal', null);
  app.decorateRequest('actor', null);
  app.addHook('onRequest', async (request) => {
    const declared = request.routeOptions.config?.access;
    if (!declared || 'public' in declared) return;
    const principal = await resolve(request, { renewal: declared.renewal });
    if (!permits(principal.roles, declared.roles)) throw new ApiError('forbidden', `needs one of: ${declared.roles.join(', ')}`);
    request.principal = principal;
    request.actor = actorOf(principal);
  });

  // Public: what devices, relying parties and scrapers need without credentials.
  app.get('/v1/ca/bundle', access(PUBLIC), (_request, reply) => reply.type('application/x-pem-file').send(deps.caBundle()));
  app.get('/v1/crl', access(PUBLIC), (_request, reply) => reply.type('application/pkix-crl').send(deps.crls.der('default')));
  caCrlRoute(app, deps);
  app.get('/metrics', access(PUBLIC), async (_request, reply) => reply.type(deps.metrics.contentType).send(await deps.metrics.metrics()));
  // Health: the process is up. Readiness: it should get traffic (a load balancer's check).
  app.get('/healthz', access(PUBLIC), () => ({ status: 'ok', node: deps.node }));
  app.get('/readyz', access(PUBLIC), async () => {
    const readiness = await deps.readiness();
    if (!readiness.ready) throw new ApiError(readiness.code);
    return { status: 'ready', node: deps.node };
  });

  deviceRoutes(app, deps);
  certificateRoutes(app, deps);
  caRoutes(app, deps);
  groupRoutes(app, deps);
  auditRoutes(app, deps);
  brokerRoutes(app, deps);
  breakGlassRoutes(app, deps);
  claimRoutes(app, deps);
  stationRoutes(app, deps);
  renewalRoutes(app, deps);
  batchRoutes(app, deps);
  keyRoutes(app, deps);
  estRoutes(app, deps);

  // Who may call what: the role table and every route's declaration.
  app.get('/v1/access', access(READERS), () => ({
    roles: Object.fromEntries(Object.entries(ROLES).map(([role, info]) => [role, { holders: info.holders, summary: info.summary }])),
    routes: declared.map((r) => ({ method: r.method, url: r.url, ...('public' in r.access ? { public: true } : { roles: r.access.roles }) })),
  }));

  return app;
}

export type ApiServer = Awaited<ReturnType<typeof buildApi>>;

/** Replaces the API's server credentials or client trust, keeping every other option. */
export function apiTlsContext(app: ApiServer, initial: ApiTls) {
  let current = { ...initial };
  const apply = () => app.server.setSecureContext(secureContext(current));
  return {
    setTrust(ca: string) {
      current = { ...current, ca };
      apply();
    },
    setServerCredentials(credentials: { key: string; cert: string }) {
      current = { ...current, ...credentials };
      apply();
    },
  };
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling a route that is not public. */
    principal: Principal | null;
    /** The same, as the audit log names it. */
    actor: Actor | null;
  }
}
