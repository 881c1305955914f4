// Phased enforcement: the listener and each group are in `enforce` (failed checks refuse)
// or `monitor` (failed checks are counted as would-refuse and let through). Switching is an
// audited change the brokers hear of, with no restart.
import type { Changes } from './changes.js';
import { RegistryError } from './errors.js';
import type { Actor, EnforcementMode } from './model.js';
import type { RegistryStore } from './store.js';

const LISTENER_KEY = 'enforcement.listener';

export class Enforcement {
  constructor(
    private readonly store: RegistryStore,
    private readonly changes: Changes,
  ) {}

  async listenerMode(): Promise<EnforcementMode> {
    return ((await this.store.settings.get(LISTENER_KEY)) as EnforcementMode | undefined) ?? 'enforce';
  }

  async setListenerMode(mode: EnforcementMode, actor: Actor): Promise<void> {
    await this.changes.run(actor, async ({ tx, at, iso, audit, announce }) => {
      const previous = ((await tx.settings.get(LISTENER_KEY)) as EnforcementMode | undefined) ?? 'enforce';
      if (previous === mode) return;
      await tx.settings.set(LISTENER_KEY, mode, at);
      audit({ action: 'enforcement.changed', subjectType: 'broker', subjectId: 'listener', details: { previous, mode } });
      announce({ type: 'enforcement.changed', scope: 'listener', mode, at: iso });
    });
  }

  async setGroupMode(groupId: string, mode: EnforcementMode, actor: Actor): Promise<void> {
    await this.changes.run(actor, async ({ tx, at, iso, audit, announce }) => {
      const group = await tx.groups.get(groupId);
      if (!group) throw new RegistryError('group_not_found', groupId);
      if (group.enforcement === mode) return;
      await tx.groups.setEnforcement(groupId, mode, at);
      audit({ action: 'enforcement.changed', subjectType: 'group', subjectId: groupId, details: { previous: group.enforcement, mode } });
      announce({ type: 'enforcement.changed', scope: 'group', groupId, mode, at: iso });
    });
  }

  /** The groups in monitor mode. */
  async monitoredGroups(): Promise<string[]> {
    return (await this.store.groups.all()).filter((g) => g.enforcement === 'monitor').map((g) => g.id);
  }
}
