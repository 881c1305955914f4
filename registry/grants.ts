// Break-glass: an operator opens a grant for one device to pass one failed check for a
// while; it works only once a second operator approves it; it ends by itself or when closed.
// Every step is audited and announced. Which checks may be waived is the broker's rule; the
// registry keeps the grants and their lifecycle.
import { randomUUID } from 'node:crypto';
import type { Changes } from './changes.js';
import type { Clock } from './clock.js';
import { RegistryError } from './errors.js';
import type { DeviceId } from './ids.js';
import { grantStatus, type Actor, type Grant } from './model.js';
import type { RegistryStore } from './store.js';

export interface GrantRequest {
  deviceId: DeviceId;
  fingerprint?: string;
  waives: string;
  reason: string;
  durationMs: number;
}

const operatorName = (a: Actor) => `${a.kind}:${a.id}`;

export class Grants {
  constructor(
    private readonly store: RegistryStore,
    private readonly changes: Changes,
    private readonly clock: Clock,
  ) {}

  async open(request: GrantRequest, actor: Actor): Promise<Grant> {
    return this.changes.run(actor, async ({ tx, at, iso, audit, announce }) => {
      if (!(await tx.devices.get(request.deviceId))) throw new RegistryError('device_not_found', request.deviceId);
      const grant: Grant = { id: randomUUID(), ...request, requestedBy: operatorName(actor), createdAt: at };
      await tx.grants.insert(grant);
      audit({ action: 'grant.opened', subjectType: 'grant', subjectId: grant.id, deviceId: grant.deviceId, reason: grant.reason, details: { waives: grant.waives, fingerprint: grant.fingerprint ?? null, durationMs: grant.durationMs } });
      announce({ type: 'grant.changed', grantId: grant.id, deviceId: grant.deviceId, status: 'PENDING', at: iso });
      return grant;
    });
  }

  /** A second operator approves; the grant's time starts now. */
  async approve(id: string, actor: Actor): Promise<Grant> {
    return this.changes.run(actor, async ({ tx, at, iso, audit, announce }) => {
      const grant = await tx.grants.get(id, { lock: true });
      if (!grant) throw new RegistryError('grant_not_found', id);
      if (grantStatus(grant, at) !== 'PENDING') throw new RegistryError('grant_not_pending', id);
      if (grant.requestedBy === operatorName(actor)) throw new RegistryError('grant_self_approval');
      const expiresAt = new Date(at.getTime() + grant.durationMs);
      await tx.grants.approve(id, operatorName(actor), at, expiresAt);
      audit({ action: 'grant.approved', subjectType: 'grant', subjectId: id, deviceId: grant.deviceId, details: { expiresAt: expiresAt.toISOString() } });
      announce({ type: 'grant.changed', grantId: id, deviceId: grant.deviceId, status: 'ACTIVE', at: iso });
      return { ...grant, approvedBy: operatorName(actor), approvedAt: at, expiresAt };
    });
  }

  async close(id: string, actor: Actor): Promise<Grant> {
    return this.changes.run(actor, async ({ tx, at, iso, audit, announce }) => {
      const grant = await tx.grants.get(id, { lock: true });
      if (!grant) throw new RegistryError('grant_not_found', id);
      const status = grantStatus(grant, at);
      if (status === 'CLOSED' || status === 'EXPIRED') throw new RegistryError('grant_ended', id);
      await tx.grants.close(id, operatorName(actor), at);
      audit({ action: 'grant.closed', subjectType: 'grant', subjectId: id, deviceId: grant.deviceId, details: { previous: status } });
      announce({ type: 'grant.changed', grantId: id, deviceId: grant.deviceId, status: 'CLOSED', at: iso });
      return { ...grant, closedBy: operatorName(actor), closedAt: at };
    });
  }

  async get(id: string): Promise<Grant> {
    const grant = await this.store.grants.get(id);
    if (!grant) throw new RegistryError('grant_not_found', id);
    return grant;
  }

  list(): Promise<Grant[]> {
    return this.store.grants.all();
  }

  active(): Promise<Grant[]> {
    return this.store.grants.active(this.clock());
  }

  /** Each use is a line in the audit log: who got in, through which grant, past which check. */
  async recordUse(grant: Grant, details: { fingerprint: string; peer: string }, actor: Actor): Promise<void> {
    await this.changes.run(actor, ({ audit }) => {
      audit({ action: 'grant.used', subjectType: 'grant', subjectId: grant.id, deviceId: grant.deviceId, reason: grant.waives, details });
      return Promise.resolve();
    });
  }
}
