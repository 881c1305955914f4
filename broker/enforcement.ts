// Phased enforcement at the broker: whether a refusal is carried out or only recorded as
// "would refuse", and the record operators read before they switch to enforce.
import type { EnforcementMode, WouldRefuse as Recorded } from '../registry/model.js';
import type { Reason } from './reasons.js';
import { ALWAYS_ENFORCED } from './reasons.js';

export interface WouldRefuse extends Recorded {
  reason: Reason;
}

const KEPT = 10_000;

export class EnforcementState {
  #listener: EnforcementMode = 'enforce';
  #monitoredGroups = new Set<string>();
  readonly #wouldRefuse = new Map<string, WouldRefuse>();

  set(listener: EnforcementMode, monitoredGroups: Iterable<string>): void {
    this.#listener = listener;
    this.#monitoredGroups = new Set(monitoredGroups);
  }

  setGroup(groupId: string, mode: EnforcementMode): void {
    if (mode === 'monitor') this.#monitoredGroups.add(groupId);
    else this.#monitoredGroups.delete(groupId);
  }

  get listener(): EnforcementMode {
    return this.#listener;
  }

  get monitoredGroups(): string[] {
    return [...this.#monitoredGroups].sort();
  }

  /** Whether a refusal for `reason`, of a device in `groups`, is only to be recorded. */
  monitors(reason: Reason, groups: readonly string[]): boolean {
    if (ALWAYS_ENFORCED.includes(reason)) return false;
    return this.#listener === 'monitor' || groups.some((g) => this.#monitoredGroups.has(g));
  }

  record(reason: Reason, who: { clientId?: string; deviceId?: string; fingerprint?: string; peer?: string }, at: Date): void {
    const key = `${reason}|${who.deviceId ?? ''}|${who.clientId ?? ''}`;
    const seen = this.#wouldRefuse.get(key);
    if (seen) {
      seen.count++;
      seen.lastSeen = at.toISOString();
      seen.lastPeer = who.peer;
      return;
    }
    if (this.#wouldRefuse.size >= KEPT) this.#wouldRefuse.delete(this.#wouldRefuse.keys().next().value!);
    this.#wouldRefuse.set(key, { reason, clientId: who.clientId, deviceId: who.deviceId, fingerprint: who.fingerprint, lastPeer: who.peer, count: 1, firstSeen: at.toISOString(), lastSeen: at.toISOString() });
  }

  /** Who enforcement would cut off, most frequent first. */
  wouldRefuse(): WouldRefuse[] {
    return [...this.#wouldRefuse.values()].sort((a, b) => b.count - a.count);
  }
}
