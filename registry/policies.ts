// What each CA's certificates live by: their lifetime, how long after expiry they may still
// renew themselves, how long a renewed certificate stays ACTIVE if its successor is never
// seen, and whether a renewal must bring a new key. Changes are audited and announced.
import type { Changes } from './changes.js';
import { RegistryError } from './errors.js';
import type { Actor, CaPolicy } from './model.js';
import type { RegistryStore } from './store.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

export const DEFAULT_CA_POLICY: Readonly<CaPolicy> = Object.freeze({ renewalWindowMs: 0, renewalGraceMs: DAY_MS, requireNewKey: false });

/** Bounds of each duration, inclusive: down to an hour for short-lived fleets, up to five years. */
export const CA_POLICY_BOUNDS = {
  certificateLifetimeMs: [HOUR_MS, 5 * 365 * DAY_MS],
  renewalWindowMs: [0, 365 * DAY_MS],
  renewalGraceMs: [MINUTE_MS, 90 * DAY_MS],
} as const satisfies Record<string, readonly [number, number]>;

function checkBounds(policy: CaPolicy): void {
  for (const [field, [min, max]] of Object.entries(CA_POLICY_BOUNDS)) {
    const value = policy[field as keyof typeof CA_POLICY_BOUNDS];
    if (value !== undefined && (!Number.isInteger(value) || value < min || value > max)) throw new RegistryError('invalid_ca_policy', `${field} must be ${min}–${max} ms`);
  }
}

export class CaPolicies {
  constructor(
    private readonly store: RegistryStore,
    private readonly changes: Changes,
  ) {}

  /** The policy in force for a CA: what was set, defaults for the rest. */
  async get(caId: string): Promise<CaPolicy> {
    return { ...DEFAULT_CA_POLICY, ...(await this.store.policies.get(caId)) };
  }

  /** Replaces a CA's policy; fields left out return to their defaults. */
  async set(caId: string, policy: Partial<CaPolicy>, actor: Actor): Promise<CaPolicy> {
    const next: CaPolicy = { ...DEFAULT_CA_POLICY, ...policy };
    checkBounds(next);
    return this.changes.run(actor, async ({ tx, at, iso, audit, announce }) => {
      if (!(await tx.cas.get(caId))) throw new RegistryError('ca_not_found', caId);
      const previous = await tx.policies.get(caId);
      await tx.policies.set(caId, next, at);
      audit({ action: 'ca.policy_set', subjectType: 'ca', subjectId: caId, details: { previous: previous ?? null, policy: { ...next } } });
      announce({ type: 'ca.policy', caId, at: iso });
      return next;
    });
  }
}
