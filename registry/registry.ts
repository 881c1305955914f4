// The registry as the rest of the service sees it: one object, its concerns in separate
// parts. Every change goes through Changes: one transaction, audited, announced after commit.
import { AuditLog } from './audit-log.js';
import { Authorities } from './authorities.js';
import { Changes } from './changes.js';
import { ClaimBatches } from './claims.js';
import type { Clock } from './clock.js';
import type { EventBus } from './events.js';
import { Enforcement } from './enforcement.js';
import { Grants } from './grants.js';
import { Groups } from './groups.js';
import { Operators } from './operators.js';
import type { Fingerprint } from './ids.js';
import { Lifecycle } from './lifecycle.js';
import type { Actor, AdmissionRecord, AuditInput, Sighting } from './model.js';
import { CaPolicies } from './policies.js';
import { Reports } from './reports.js';
import { IssuingRotation } from './rotation.js';
import { Stations } from './stations.js';
import type { RegistryStore } from './store.js';

export interface RegistryDeps {
  store: RegistryStore;
  bus: EventBus;
  clock: Clock;
}

export class Registry {
  readonly lifecycle: Lifecycle;
  readonly authorities: Authorities;
  readonly groups: Groups;
  readonly auditLog: AuditLog;
  readonly reports: Reports;
  readonly operators: Operators;
  readonly enforcement: Enforcement;
  readonly grants: Grants;
  readonly claims: ClaimBatches;
  readonly rotation: IssuingRotation;
  readonly stations: Stations;
  readonly policies: CaPolicies;

  readonly #changes: Changes;

  constructor(private readonly deps: RegistryDeps) {
    const changes = (this.#changes = new Changes(deps.store, deps.bus, deps.clock));
    this.lifecycle = new Lifecycle(deps.store, changes);
    this.authorities = new Authorities(deps.store, changes, deps.clock);
    this.groups = new Groups(deps.store, changes);
    this.auditLog = new AuditLog(deps.store);
    this.reports = new Reports(deps.store, deps.clock);
    this.operators = new Operators(deps.store, changes);
    this.enforcement = new Enforcement(deps.store, changes);
    this.grants = new Grants(deps.store, changes, deps.clock);
    this.claims = new ClaimBatches(deps.store, changes, deps.clock);
    this.rotation = new IssuingRotation(deps.store, changes);
    this.stations = new Stations(deps.store, changes);
    this.policies = new CaPolicies(deps.store, changes);
  }

  get bus(): EventBus {
    return this.deps.bus;
  }

  admissionRecord(fingerprint: Fingerprint): Promise<AdmissionRecord | undefined> {
    return this.deps.store.certificates.admissionRecord(fingerprint);
  }

  admissionRecords(fingerprints: readonly Fingerprint[]): Promise<Map<Fingerprint, AdmissionRecord>> {
    return this.deps.store.certificates.admissionRecords(fingerprints);
  }

  /** An operator action that changes no record (a reload, a ban lifted), for the audit log. */
  recordAction(actor: Actor, entry: AuditInput): Promise<void> {
    return this.#changes.run(actor, ({ audit }) => {
      audit(entry);
      return Promise.resolve();
    });
  }

  /**
   * Forgets which certificate each factory batch line produced, for lines recorded before
   * `cutoff`: a batch retried after that is issued anew. Not a change: not audited.
   */
  forgetBatchLines(cutoff: Date): Promise<number> {
    return this.deps.store.batches.forgetBefore(cutoff);
  }

  /** Something the broker saw that the fleet report should show. Not a change: not audited. */
  recordSighting(sighting: Omit<Sighting, 'id' | 'at'>): Promise<void> {
    return this.deps.store.sightings.record({ ...sighting, at: this.deps.clock() });
  }
}
