// Factory stations: identities of their own, each with a client certificate and roles. A
// station is created with its certificate (provisioning/stations.ts signs it) and revoked
// for good; a revoked station's certificate goes on its CA's CRL.
import type { Changes } from './changes.js';
import { RegistryError } from './errors.js';
import type { Fingerprint } from './ids.js';
import type { Actor, Station } from './model.js';
import { assignable, isRole } from './roles.js';
import type { RegistryStore } from './store.js';

/** Station names: what `fleet station add NAME` accepts, safe in a URL path and a file name. */
export const STATION_NAME_PATTERN = '^[A-Za-z0-9._-]{1,64}$';

export function checkStationRoles(roles: readonly string[]): void {
  const bad = roles.filter((r) => !isRole(r) || !assignable(r, 'station'));
  if (bad.length > 0 || roles.length === 0) throw new RegistryError('role_unknown', bad.length > 0 ? bad.join(', ') : 'a station needs at least one role');
}

export class Stations {
  constructor(
    private readonly store: RegistryStore,
    private readonly changes: Changes,
  ) {}

  async record(station: Omit<Station, 'status' | 'createdAt'>, actor: Actor): Promise<Station> {
    checkStationRoles(station.roles);
    return this.changes.run(actor, async ({ tx, at, audit }) => {
      const record: Station = { ...station, status: 'ACTIVE', createdAt: at };
      if (!(await tx.stations.insert(record))) throw new RegistryError('station_exists', station.name);
      audit({
        action: 'station.created',
        subjectType: 'station',
        subjectId: station.name,
        certificateSerial: station.serial,
        details: { roles: station.roles, fingerprint: station.fingerprint, ca: station.caId, notAfter: station.notAfter.toISOString() },
      });
      return record;
    });
  }

  /** The station a client certificate belongs to, if it is a station's. Read on every call: a revocation applies at once. */
  byFingerprint(fingerprint: Fingerprint): Promise<Station | undefined> {
    return this.store.stations.byFingerprint(fingerprint);
  }

  async get(name: string): Promise<Station> {
    const station = await this.store.stations.get(name);
    if (!station) throw new RegistryError('station_not_found', name);
    return station;
  }

  list(): Promise<Station[]> {
    return this.store.stations.all();
  }

  /** Revokes a station for good; revoking again re-announces it (the CRL is rebuilt). */
  async revoke(name: string, actor: Actor, reason?: string): Promise<Station> {
    return this.changes.run(actor, async ({ tx, at, iso, audit, announce }) => {
      const station = await tx.stations.get(name, { lock: true });
      if (!station) throw new RegistryError('station_not_found', name);
      if (station.status !== 'REVOKED') {
        await tx.stations.revoke(name, at, reason);
        audit({ action: 'station.revoked', subjectType: 'station', subjectId: name, certificateSerial: station.serial, reason, details: { fingerprint: station.fingerprint } });
      }
      announce({ type: 'station.status', name, caId: station.caId, status: 'REVOKED', at: iso, reason });
      return (await tx.stations.get(name))!;
    });
  }
}
