// Devices, their certificates' enrollment, their status, and their place under a gateway.
import type { FastifyInstance, RawServerBase } from 'fastify';
import type { DeviceId } from '../../../registry/ids.js';
import type { DeviceStatus, JsonObject } from '../../../registry/model.js';
import { DEVICE_READERS, OPERATORS, PROVISIONERS, READERS, access } from '../access.js';
import type { ApiDeps } from '../context.js';
import { bodies, params } from '../schemas.js';
import { deviceJson, enrollmentJson } from '../views.js';

type DeviceParams = { Params: { deviceId: string } };
type Reason = { reason?: string } | undefined;

export function deviceRoutes<S extends RawServerBase>(app: FastifyInstance<S>, deps: ApiDeps): void {
  const { registry } = deps;
  const view = async (id: DeviceId) => {
    const v = await registry.lifecycle.deviceView(id);
    return deviceJson(v, await deps.presence.isConnected(id));
  };

  app.post<{ Body: { id: string; attributes?: JsonObject; gateway?: boolean } }>('/v1/devices', { schema: { body: bodies.createDevice }, ...access(PROVISIONERS) }, async (request, reply) => {
    const { id, attributes, gateway } = request.body;
    await registry.lifecycle.createDevice({ id: id as DeviceId, attributes, gateway }, request.actor!);
    return reply.status(201).send(await view(id as DeviceId));
  });

  app.get<DeviceParams>('/v1/devices/:deviceId', { schema: { params: params.device }, ...access(DEVICE_READERS) }, (request) => view(request.params.deviceId as DeviceId));

  app.post<DeviceParams & { Body: { csr: string; ca?: string } }>(
    '/v1/devices/:deviceId/certificates',
    { schema: { params: params.device, body: bodies.enroll }, ...access(PROVISIONERS) },
    async (request, reply) => {
      const enrollment = await deps.provisioning.enroll(request.params.deviceId as DeviceId, request.body.csr, request.actor!, request.body.ca);
      return reply.status(201).send(enrollmentJson(enrollment));
    },
  );

  // revoke: decommission for good; disable/enable: reversible.
  const moves: [string, DeviceStatus][] = [
    ['revoke', 'DECOMMISSIONED'],
    ['disable', 'DISABLED'],
    ['enable', 'ACTIVE'],
  ];
  for (const [action, status] of moves) {
    app.post<DeviceParams & { Body: Reason }>(`/v1/devices/:deviceId/${action}`, { schema: { params: params.device, body: bodies.reason }, ...access(OPERATORS) }, async (request) => {
      const id = request.params.deviceId as DeviceId;
      await registry.lifecycle.setDeviceStatus(id, status, request.actor!, request.body?.reason);
      return view(id);
    });
  }

  app.put<DeviceParams>('/v1/devices/:deviceId/gateway', { schema: { params: params.device }, ...access(OPERATORS) }, async (request) => {
    await registry.groups.setGateway(request.params.deviceId as DeviceId, true, request.actor!);
    return view(request.params.deviceId as DeviceId);
  });
  app.delete<DeviceParams>('/v1/devices/:deviceId/gateway', { schema: { params: params.device }, ...access(OPERATORS) }, async (request) => {
    await registry.groups.setGateway(request.params.deviceId as DeviceId, false, request.actor!);
    return view(request.params.deviceId as DeviceId);
  });

  // A gateway's children come from the fleet graph, which the registry's events keep in step.
  const children = async (gatewayId: string) => {
    await registry.lifecycle.deviceView(gatewayId as DeviceId); // 404 for an unknown device
    return { gateway: gatewayId, children: deps.graph.children(gatewayId) ?? [] };
  };
  app.get<DeviceParams>('/v1/devices/:deviceId/children', { schema: { params: params.device }, ...access(READERS) }, (request) => children(request.params.deviceId));
  type Child = { Params: { deviceId: string; childId: string } };
  app.put<Child>('/v1/devices/:deviceId/children/:childId', { schema: { params: params.gatewayChild }, ...access(OPERATORS) }, async (request) => {
    await registry.groups.setParent(request.params.childId as DeviceId, request.params.deviceId as DeviceId, request.actor!);
    return children(request.params.deviceId);
  });
  app.delete<Child>('/v1/devices/:deviceId/children/:childId', { schema: { params: params.gatewayChild }, ...access(OPERATORS) }, async (request) => {
    const child = await registry.lifecycle.deviceView(request.params.childId as DeviceId);
    if (child.device.gatewayId === request.params.deviceId) await registry.groups.setParent(child.device.id, undefined, request.actor!);
    return children(request.params.deviceId);
  });
}
