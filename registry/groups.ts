// Groups with topic policies, and gateways with child devices: the two ways a device is
// granted topics beyond its own namespace.
import type { Changes } from './changes.js';
import { RegistryError } from './errors.js';
import type { DeviceId } from './ids.js';
import type { Actor, Device, Group, TopicPolicy } from './model.js';
import type { RegistryQueries, RegistryStore } from './store.js';
import { validatePolicy } from './topic-policy.js';

/** Everything that decides a device's topic access, read in one go. */
export interface DeviceAccess {
  deviceId: DeviceId;
  groups: Group[];
  /** The devices this one speaks for, when it is a gateway. */
  children: DeviceId[];
}

async function existingDevice(q: RegistryQueries, id: DeviceId, lock = false): Promise<Device> {
  const device = await q.devices.get(id, { lock });
  if (!device) throw new RegistryError('device_not_found', id);
  return device;
}

async function existingGroup(q: RegistryQueries, id: string): Promise<Group> {
  const group = await q.groups.get(id);
  if (!group) throw new RegistryError('group_not_found', id);
  return group;
}

export class Groups {
  constructor(
    private readonly store: RegistryStore,
    private readonly changes: Changes,
  ) {}

  async create(input: { id: string; description?: string; policy?: TopicPolicy }, actor: Actor): Promise<Group> {
    const policy = input.policy ?? { publish: [], subscribe: [] };
    validatePolicy(policy);
    return this.changes.run(actor, async ({ tx, at, iso, audit, announce }) => {
      const group: Group = { id: input.id, description: input.description ?? '', policy, enforcement: 'enforce', createdAt: at, updatedAt: at };
      if (!(await tx.groups.insert(group))) throw new RegistryError('group_exists', input.id);
      audit({ action: 'group.created', subjectType: 'group', subjectId: group.id, details: { policy } });
      announce({ type: 'group.policy', groupId: group.id, at: iso });
      return group;
    });
  }

  async view(id: string): Promise<{ group: Group; members: DeviceId[] }> {
    const group = await existingGroup(this.store, id);
    return { group, members: await this.store.groups.members(id) };
  }

  /** The group, or group_not_found. */
  get(id: string): Promise<Group> {
    return existingGroup(this.store, id);
  }

  list(): Promise<Group[]> {
    return this.store.groups.all();
  }

  async setPolicy(id: string, policy: TopicPolicy, actor: Actor): Promise<Group> {
    validatePolicy(policy);
    return this.changes.run(actor, async ({ tx, at, iso, audit, announce }) => {
      const group = await existingGroup(tx, id);
      await tx.groups.setPolicy(id, policy, at);
      audit({ action: 'group.policy_changed', subjectType: 'group', subjectId: id, details: { previous: group.policy, policy } });
      announce({ type: 'group.policy', groupId: id, at: iso });
      return { ...group, policy, updatedAt: at };
    });
  }

  async setMembership(groupId: string, deviceId: DeviceId, member: boolean, actor: Actor): Promise<void> {
    await this.changes.run(actor, async ({ tx, at, iso, audit, announce }) => {
      await existingGroup(tx, groupId);
      await existingDevice(tx, deviceId);
      const changed = member ? await tx.groups.addMember(groupId, deviceId, at) : await tx.groups.removeMember(groupId, deviceId);
      if (!changed) return;
      audit({ action: member ? 'group.member_added' : 'group.member_removed', subjectType: 'group', subjectId: groupId, deviceId, details: {} });
      announce({ type: 'group.membership', groupId, deviceId, member, at: iso });
    });
  }

  async setGateway(deviceId: DeviceId, gateway: boolean, actor: Actor): Promise<void> {
    await this.changes.run(actor, async ({ tx, at, iso, audit, announce }) => {
      const device = await existingDevice(tx, deviceId, true);
      if (device.gateway === gateway) return;
      if (!gateway && (await tx.devices.children(deviceId)).length > 0) throw new RegistryError('illegal_transition', 'remove the gateway’s children first');
      await tx.devices.setGatewayFlag(deviceId, gateway, at);
      audit({ action: gateway ? 'device.gateway_enabled' : 'device.gateway_disabled', subjectType: 'device', subjectId: deviceId, deviceId, details: {} });
      announce({ type: 'device.topology', deviceId, gateway, gatewayId: device.gatewayId, at: iso });
    });
  }

  /** Makes `childId` a child of `gatewayId` (or of no gateway, when undefined). */
  async setParent(childId: DeviceId, gatewayId: DeviceId | undefined, actor: Actor): Promise<void> {
    await this.changes.run(actor, async ({ tx, at, iso, audit, announce }) => {
      const child = await existingDevice(tx, childId, true);
      if (child.gatewayId === gatewayId) return;
      if (gatewayId !== undefined) {
        const gateway = await existingDevice(tx, gatewayId);
        if (!gateway.gateway) throw new RegistryError('not_a_gateway', gatewayId);
        // Walk up from the new gateway: the child must not be among its ancestors.
        for (let up: Device | undefined = gateway; up; up = up.gatewayId ? await tx.devices.get(up.gatewayId) : undefined) {
          if (up.id === childId) throw new RegistryError('gateway_cycle', `${childId} → ${gatewayId}`);
        }
      }
      await tx.devices.setGateway(childId, gatewayId, at);
      audit({
        action: gatewayId ? 'device.gateway_assigned' : 'device.gateway_removed',
        subjectType: 'device',
        subjectId: childId,
        deviceId: childId,
        details: { gateway: gatewayId ?? null, previous: child.gatewayId ?? null },
      });
      announce({ type: 'device.topology', deviceId: childId, gateway: child.gateway, gatewayId, previousGatewayId: child.gatewayId, at: iso });
    });
  }

  async children(gatewayId: DeviceId): Promise<DeviceId[]> {
    await existingDevice(this.store, gatewayId);
    return this.store.devices.children(gatewayId);
  }

  /** The groups and gateway children that widen a device's topic access. */
  async accessOf(deviceId: DeviceId): Promise<DeviceAccess> {
    return (await this.accessOfMany([deviceId]))[0]!;
  }

  /** accessOf for many devices in three queries, whatever their number: a CONNECT storm asks for thousands. */
  async accessOfMany(deviceIds: readonly DeviceId[]): Promise<DeviceAccess[]> {
    const devices = await this.store.devices.getMany(deviceIds);
    const gateways = deviceIds.filter((id) => devices.get(id)?.gateway);
    const [groups, children] = await Promise.all([this.store.groups.ofMany(deviceIds), gateways.length > 0 ? this.store.devices.childrenOfMany(gateways) : new Map<DeviceId, DeviceId[]>()]);
    return deviceIds.map((deviceId) => ({ deviceId, groups: groups.get(deviceId) ?? [], children: children.get(deviceId) ?? [] }));
  }
}
