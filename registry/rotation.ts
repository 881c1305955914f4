// Issuing-CA rotation as the registry records it: explicit slots (the current CA, which
// signs, and the next, prepared ahead), the CAs they superseded, and the ones retired once
// nothing depends on them. Each step is one change: audited, announced after commit. When
// to take a step is provisioning's rotator's decision; this only keeps the steps legal.
import { insertCa } from './authorities.js';
import type { Change, Changes } from './changes.js';
import { RegistryError } from './errors.js';
import type { Actor, CaRecord, IssuingCa, IssuingState } from './model.js';
import type { RegistryStore } from './store.js';

export interface IssuingSlots {
  /** The CA that signs now. */
  current: IssuingCa;
  /** Prepared ahead: trusted, signing nothing yet. */
  next?: IssuingCa;
  /** Superseded and still trusted until nothing depends on them. */
  old: IssuingCa[];
  retired: IssuingCa[];
}

export function slotsOf(list: readonly IssuingCa[]): IssuingSlots | undefined {
  const current = list.find((c) => c.state === 'active');
  if (!current) return undefined;
  return {
    current,
    next: list.find((c) => c.state === 'prepared'),
    old: list.filter((c) => c.state === 'old'),
    retired: list.filter((c) => c.state === 'retired'),
  };
}

/** The generation the next prepared CA takes: one more than any CA rotation has had. */
export function nextGeneration(slots: IssuingSlots): number {
  return Math.max(slots.current.generation, ...(slots.next ? [slots.next.generation] : []), ...slots.old.map((c) => c.generation), ...slots.retired.map((c) => c.generation)) + 1;
}

const ACTIONS: Record<IssuingState, string> = { prepared: 'ca.prepared', active: 'ca.activated', old: 'ca.superseded', retired: 'ca.retired' };

function move(change: Change, ca: IssuingCa, to: IssuingState, details: Record<string, unknown> = {}): Promise<void> {
  change.audit({ action: ACTIONS[to], subjectType: 'ca', subjectId: ca.caId, details: { generation: ca.generation, previous: ca.state, ...details } });
  change.announce({ type: 'ca.rotation', caId: ca.caId, state: to, at: change.iso });
  return change.tx.rotation.setState(ca.caId, to, change.at);
}

export class IssuingRotation {
  constructor(
    private readonly store: RegistryStore,
    private readonly changes: Changes,
  ) {}

  async slots(): Promise<IssuingSlots | undefined> {
    return slotsOf(await this.store.rotation.all());
  }

  /** Records the first issuing CA as the current one, unless rotation already has one. */
  async adoptFirst(caId: string, actor: Actor): Promise<IssuingSlots> {
    const existing = await this.slots();
    if (existing) return existing;
    await this.changes.run(actor, async (change) => {
      if ((await change.tx.rotation.all({ lock: true })).length > 0) return;
      if (!(await change.tx.cas.get(caId))) throw new RegistryError('ca_not_found', caId);
      const first: IssuingCa = { caId, state: 'active', generation: 1, activatedAt: change.at };
      await change.tx.rotation.insert(first);
      change.audit({ action: 'ca.activated', subjectType: 'ca', subjectId: caId, details: { generation: 1, previous: null } });
      change.announce({ type: 'ca.rotation', caId, state: 'active', at: change.iso });
    });
    return (await this.slots())!;
  }

  /** Records a CA just created for the next slot: the CA itself and its place, in one change. */
  async prepare(ca: CaRecord, actor: Actor): Promise<IssuingCa> {
    return this.changes.run(actor, async (change) => {
      const slots = slotsOf(await change.tx.rotation.all({ lock: true }));
      if (!slots) throw new RegistryError('illegal_transition', 'no current issuing CA to prepare a successor for');
      if (slots.next) throw new RegistryError('illegal_transition', `${slots.next.caId} is prepared already`);
      await insertCa(change, ca);
      const next: IssuingCa = { caId: ca.id, state: 'prepared', generation: nextGeneration(slots), preparedAt: change.at };
      await change.tx.rotation.insert(next);
      change.audit({ action: 'ca.prepared', subjectType: 'ca', subjectId: ca.id, details: { generation: next.generation, successorOf: slots.current.caId } });
      change.announce({ type: 'ca.rotation', caId: ca.id, state: 'prepared', at: change.iso });
      return next;
    });
  }

  /** The prepared CA becomes the current one; the current one is superseded (still trusted). */
  async activateNext(actor: Actor): Promise<IssuingSlots> {
    await this.changes.run(actor, async (change) => {
      const slots = slotsOf(await change.tx.rotation.all({ lock: true }));
      if (!slots?.next) throw new RegistryError('illegal_transition', 'no prepared issuing CA to activate');
      await move(change, slots.current, 'old', { successor: slots.next.caId });
      await move(change, slots.next, 'active', { predecessor: slots.current.caId });
    });
    return (await this.slots())!;
  }

  /** A superseded CA leaves the trust bundles: nothing active depends on it any more, or it expired. */
  async retire(caId: string, why: 'no_dependents' | 'expired', actor: Actor): Promise<void> {
    await this.changes.run(actor, async (change) => {
      const ca = (await change.tx.rotation.all({ lock: true })).find((c) => c.caId === caId);
      if (!ca || ca.state !== 'old') throw new RegistryError('illegal_transition', `${caId} is not a superseded issuing CA`);
      await move(change, ca, 'retired', { why });
      const record = await change.tx.cas.get(caId);
      // A revoked CA stays revoked (and in the broker's trust, for precise refusals).
      if (record?.status === 'ACTIVE') {
        await change.tx.cas.retire(caId);
        change.announce({ type: 'ca.status', caId, status: 'RETIRED', at: change.iso });
      }
    });
  }

  /** What still needs a CA: certificates active or awaiting activation, and claim batches that can still admit, not expired. */
  async dependents(caId: string, now: Date): Promise<number> {
    const [certificates, claims] = await Promise.all([this.store.rotation.dependents(caId, now), this.store.claims.countLiveUnder(caId, now)]);
    return certificates + claims;
  }
}
