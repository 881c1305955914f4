// Factory stations: listed and revoked here; created with `fleet station add`, which writes
// the station's key where only the station's operator reads it.
import type { FastifyInstance, RawServerBase } from 'fastify';
import { ADMINS, READERS, access } from '../access.js';
import type { ApiDeps } from '../context.js';
import { bodies, params } from '../schemas.js';
import { stationJson } from '../views.js';

type StationParams = { Params: { name: string } };

export function stationRoutes<S extends RawServerBase>(app: FastifyInstance<S>, deps: ApiDeps): void {
  const { stations } = deps.registry;
  app.get('/v1/stations', access(READERS), async () => ({ stations: (await stations.list()).map(stationJson) }));
  app.get<StationParams>('/v1/stations/:name', { schema: { params: params.station }, ...access(READERS) }, async (request) => stationJson(await stations.get(request.params.name)));
  app.post<StationParams & { Body: { reason?: string } | undefined }>(
    '/v1/stations/:name/revoke',
    { schema: { params: params.station, body: bodies.reason }, ...access(ADMINS) },
    async (request) => stationJson(await stations.revoke(request.params.name, request.actor!, request.body?.reason)),
  );
}
