// Every change to the registry goes through here: one transaction, its audit entries in the
// same transaction, and its events published only after the commit. A change is either
// durable, audited and announced, or none of these.
import type { Clock } from './clock.js';
import type { EventBus, RegistryEvent } from './events.js';
import type { Actor, AuditInput } from './model.js';
import type { RegistryQueries, RegistryStore } from './store.js';

export interface Change {
  tx: RegistryQueries;
  at: Date;
  /** ISO time of the change, for events. */
  iso: string;
  audit: (...entries: AuditInput[]) => void;
  announce: (...events: RegistryEvent[]) => void;
}

export const actorName = (a: Actor) => `${a.kind}:${a.id}`;

export class Changes {
  constructor(
    private readonly store: RegistryStore,
    private readonly bus: EventBus,
    private readonly clock: Clock,
  ) {}

  async run<T>(actor: Actor, work: (change: Change) => Promise<T>): Promise<T> {
    const at = this.clock();
    const audits: AuditInput[] = [];
    const events: RegistryEvent[] = [];
    const result = await this.store.transaction(async (tx) => {
      const value = await work({ tx, at, iso: at.toISOString(), audit: (...e) => audits.push(...e), announce: (...e) => events.push(...e) });
      await tx.audit.append(at, actorName(actor), audits);
      return value;
    });
    await this.bus.publish(events);
    return result;
  }

  /** Publishes events about state that is already durable (a repeated revocation, say). */
  announce(events: RegistryEvent[]): Promise<void> {
    return this.bus.publish(events);
  }
}
