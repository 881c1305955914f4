// Groups, their topic policies and their members.
import type { FastifyInstance, RawServerBase } from 'fastify';
import type { DeviceId } from '../../../registry/ids.js';
import type { TopicPolicy } from '../../../registry/model.js';
import { OPERATORS, READERS, access } from '../access.js';
import type { ApiDeps } from '../context.js';
import { bodies, params } from '../schemas.js';
import { groupJson } from '../views.js';

type GroupParams = { Params: { groupId: string } };
type MemberParams = { Params: { groupId: string; deviceId: string } };

export function groupRoutes<S extends RawServerBase>(app: FastifyInstance<S>, deps: ApiDeps): void {
  const { groups } = deps.registry;
  // Members come from the fleet graph, which the registry's events keep in step.
  const view = async (id: string) => {
    return groupJson(await groups.get(id), deps.graph.members(id) ?? []);
  };

  app.get('/v1/groups', access(READERS), async () => ({ groups: (await groups.list()).map((g) => groupJson(g)) }));

  app.post<{ Body: { id: string; description?: string; policy?: TopicPolicy } }>('/v1/groups', { schema: { body: bodies.createGroup }, ...access(OPERATORS) }, async (request, reply) => {
    const group = await groups.create(request.body, request.actor!);
    return reply.status(201).send(groupJson(group, []));
  });

  app.get<GroupParams>('/v1/groups/:groupId', { schema: { params: params.group }, ...access(READERS) }, (request) => view(request.params.groupId));

  app.put<GroupParams & { Body: TopicPolicy }>('/v1/groups/:groupId/policy', { schema: { params: params.group, body: bodies.policy }, ...access(OPERATORS) }, async (request) => {
    await groups.setPolicy(request.params.groupId, request.body, request.actor!);
    return view(request.params.groupId);
  });

  for (const [method, member] of [['put', true], ['delete', false]] as const) {
    app[method]<MemberParams>('/v1/groups/:groupId/members/:deviceId', { schema: { params: params.groupMember }, ...access(OPERATORS) }, async (request) => {
      await groups.setMembership(request.params.groupId, request.params.deviceId as DeviceId, member, request.actor!);
      return view(request.params.groupId);
    });
  }
}
