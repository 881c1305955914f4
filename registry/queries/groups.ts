import type { Selectable } from 'kysely';
import type { DeviceId } from '../ids.js';
import type { EnforcementMode, Group, TopicPolicy } from '../model.js';
import type { GroupsTable } from '../schema.js';
import { chunks, toDate, type QueryContext } from './executor.js';

function toGroup(row: Selectable<GroupsTable>): Group {
  return {
    id: row.id,
    description: row.description,
    policy: JSON.parse(row.policy) as TopicPolicy,
    enforcement: row.enforcement as EnforcementMode,
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}

export class GroupQueries {
  constructor(private readonly q: QueryContext) {}

  async insert(group: Group): Promise<boolean> {
    const result = await this.q.db
      .insertInto('groups')
      .values({
        id: group.id,
        description: group.description,
        policy: JSON.stringify(group.policy),
        enforcement: group.enforcement,
        created_at: group.createdAt.getTime(),
        updated_at: group.updatedAt.getTime(),
      })
      .onConflict((c) => c.column('id').doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
  }

  async get(id: string): Promise<Group | undefined> {
    const row = await this.q.db.selectFrom('groups').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toGroup(row);
  }

  async all(): Promise<Group[]> {
    return (await this.q.db.selectFrom('groups').selectAll().orderBy('id').execute()).map(toGroup);
  }

  async setPolicy(id: string, policy: TopicPolicy, at: Date): Promise<void> {
    await this.q.db.updateTable('groups').set({ policy: JSON.stringify(policy), updated_at: at.getTime() }).where('id', '=', id).execute();
  }

  async setEnforcement(id: string, mode: EnforcementMode, at: Date): Promise<void> {
    await this.q.db.updateTable('groups').set({ enforcement: mode, updated_at: at.getTime() }).where('id', '=', id).execute();
  }

  async addMember(groupId: string, deviceId: DeviceId, at: Date): Promise<boolean> {
    const result = await this.q.db
      .insertInto('group_members')
      .values({ group_id: groupId, device_id: deviceId, created_at: at.getTime() })
      .onConflict((c) => c.columns(['group_id', 'device_id']).doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
  }

  async removeMember(groupId: string, deviceId: DeviceId): Promise<boolean> {
    const result = await this.q.db.deleteFrom('group_members').where('group_id', '=', groupId).where('device_id', '=', deviceId).executeTakeFirst();
    return Number(result.numDeletedRows) === 1;
  }

  async members(groupId: string): Promise<DeviceId[]> {
    const rows = await this.q.db.selectFrom('group_members').select('device_id').where('group_id', '=', groupId).orderBy('device_id').execute();
    return rows.map((r) => r.device_id as DeviceId);
  }

  /** The groups a device belongs to, with their policies. */
  async of(deviceId: DeviceId): Promise<Group[]> {
    const rows = await this.q.db
      .selectFrom('group_members')
      .innerJoin('groups', 'groups.id', 'group_members.group_id')
      .selectAll('groups')
      .where('group_members.device_id', '=', deviceId)
      .orderBy('groups.id')
      .execute();
    return rows.map(toGroup);
  }

  /** The groups of each of these devices (a device in none is absent). */
  async ofMany(deviceIds: readonly DeviceId[]): Promise<Map<DeviceId, Group[]>> {
    const found = new Map<DeviceId, Group[]>();
    for (const slice of chunks([...new Set(deviceIds)])) {
      const rows = await this.q.db
        .selectFrom('group_members')
        .innerJoin('groups', 'groups.id', 'group_members.group_id')
        .selectAll('groups')
        .select('group_members.device_id')
        .where('group_members.device_id', 'in', slice)
        .orderBy('groups.id')
        .execute();
      for (const row of rows) {
        const id = row.device_id as DeviceId;
        const groups = found.get(id);
        if (groups) groups.push(toGroup(row));
        else found.set(id, [toGroup(row)]);
      }
    }
    return found;
  }

  /** Every membership, for building the fleet graph. */
  async edges(): Promise<{ groupId: string; deviceId: DeviceId }[]> {
    const rows = await this.q.db.selectFrom('group_members').select(['group_id', 'device_id']).execute();
    return rows.map((r) => ({ groupId: r.group_id, deviceId: r.device_id as DeviceId }));
  }
}
