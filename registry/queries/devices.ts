import type { Selectable } from 'kysely';
import type { DeviceId } from '../ids.js';
import type { Device, DeviceStatus, JsonObject } from '../model.js';
import type { DevicesTable } from '../schema.js';
import { chunks, orUndefined, toDate, type QueryContext } from './executor.js';

function toDevice(row: Selectable<DevicesTable>): Device {
  return {
    id: row.id as DeviceId,
    status: row.status as DeviceStatus,
    attributes: JSON.parse(row.attributes) as JsonObject,
    gateway: Number(row.gateway) === 1,
    gatewayId: orUndefined(row.gateway_id) as DeviceId | undefined,
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}

export class DeviceQueries {
  constructor(private readonly q: QueryContext) {}

  /** Inserts unless the id exists; returns whether it did. */
  async insert(device: Device): Promise<boolean> {
    const result = await this.q.db
      .insertInto('devices')
      .values({
        id: device.id,
        status: device.status,
        attributes: JSON.stringify(device.attributes),
        gateway: device.gateway ? 1 : 0,
        gateway_id: device.gatewayId ?? null,
        created_at: device.createdAt.getTime(),
        updated_at: device.updatedAt.getTime(),
      })
      .onConflict((c) => c.column('id').doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
  }

  /** With `lock`, the row stays locked until the transaction ends (PostgreSQL). */
  async get(id: DeviceId, options: { lock?: boolean } = {}): Promise<Device | undefined> {
    let query = this.q.db.selectFrom('devices').selectAll().where('id', '=', id);
    if (options.lock && this.q.dialect === 'postgres') query = query.forUpdate();
    const row = await query.executeTakeFirst();
    return row && toDevice(row);
  }

  /** Several devices at once, by id; with `lock` as in get(). */
  async getMany(ids: readonly DeviceId[], options: { lock?: boolean } = {}): Promise<Map<DeviceId, Device>> {
    const found = new Map<DeviceId, Device>();
    for (const slice of chunks([...new Set(ids)])) {
      let query = this.q.db.selectFrom('devices').selectAll().where('id', 'in', slice);
      if (options.lock && this.q.dialect === 'postgres') query = query.orderBy('id').forUpdate();
      for (const row of await query.execute()) found.set(row.id as DeviceId, toDevice(row));
    }
    return found;
  }

  async setStatus(id: DeviceId, status: DeviceStatus, at: Date): Promise<void> {
    await this.q.db.updateTable('devices').set({ status, updated_at: at.getTime() }).where('id', '=', id).execute();
  }

  async setAttributes(id: DeviceId, attributes: JsonObject, at: Date): Promise<void> {
    await this.q.db.updateTable('devices').set({ attributes: JSON.stringify(attributes), updated_at: at.getTime() }).where('id', '=', id).execute();
  }

  async setGatewayFlag(id: DeviceId, gateway: boolean, at: Date): Promise<void> {
    await this.q.db.updateTable('devices').set({ gateway: gateway ? 1 : 0, updated_at: at.getTime() }).where('id', '=', id).execute();
  }

  async setGateway(childId: DeviceId, gatewayId: DeviceId | undefined, at: Date): Promise<void> {
    await this.q.db.updateTable('devices').set({ gateway_id: gatewayId ?? null, updated_at: at.getTime() }).where('id', '=', childId).execute();
  }

  /** The children of each of these gateways (one with none is absent). */
  async childrenOfMany(gatewayIds: readonly DeviceId[]): Promise<Map<DeviceId, DeviceId[]>> {
    const found = new Map<DeviceId, DeviceId[]>();
    for (const slice of chunks([...new Set(gatewayIds)])) {
      const rows = await this.q.db.selectFrom('devices').select(['id', 'gateway_id']).where('gateway_id', 'in', slice).orderBy('id').execute();
      for (const row of rows) {
        const gateway = row.gateway_id as DeviceId;
        const children = found.get(gateway);
        if (children) children.push(row.id as DeviceId);
        else found.set(gateway, [row.id as DeviceId]);
      }
    }
    return found;
  }

  async children(gatewayId: DeviceId): Promise<DeviceId[]> {
    const rows = await this.q.db.selectFrom('devices').select('id').where('gateway_id', '=', gatewayId).orderBy('id').execute();
    return rows.map((r) => r.id as DeviceId);
  }

  /** Every device's id and gateway, for building the fleet graph. */
  async edges(): Promise<{ id: DeviceId; gateway: boolean; gatewayId?: DeviceId }[]> {
    const rows = await this.q.db.selectFrom('devices').select(['id', 'gateway', 'gateway_id']).execute();
    return rows.map((r) => ({ id: r.id as DeviceId, gateway: Boolean(r.gateway), gatewayId: orUndefined(r.gateway_id) as DeviceId | undefined }));
  }
}
