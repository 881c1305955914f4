// The fleet report: what an operator should look at before it becomes an outage or a
// breach. Read-only; the same for the API and the CLI.
import type { Clock } from './clock.js';
import type { CaRecord, CertificateRecord, Sighting } from './model.js';
import type { RegistryStore } from './store.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const LIMIT = 1000;

export interface CertificateSummary {
  serial: string;
  deviceId: string;
  ca: string;
  notBefore: string;
  notAfter: string;
}

export interface FleetReport {
  generatedAt: string;
  expiringWithinDays: number;
  /** ACTIVE certificates whose notAfter falls within the window. */
  expiring: CertificateSummary[];
  /** ACTIVE certificates issued more than 365 days ago. */
  older: CertificateSummary[];
  /** ACTIVE certificates under a CA that is revoked or expired. */
  underBadCa: (CertificateSummary & { problem: 'ca_revoked' | 'ca_expired' })[];
  /** One certificate seen on two live connections at once: a copied key. */
  sharedCertificates: Sighting[];
  /** A client id presented with another device's certificate. */
  clientIdConflicts: Sighting[];
}

const summary = (c: CertificateRecord): CertificateSummary => ({
  serial: c.serial,
  deviceId: c.deviceId,
  ca: c.caId,
  notBefore: c.notBefore.toISOString(),
  notAfter: c.notAfter.toISOString(),
});

export class Reports {
  constructor(
    private readonly store: RegistryStore,
    private readonly clock: Clock,
  ) {}

  async fleet(expiringWithinDays = 30): Promise<FleetReport> {
    const now = this.clock();
    const cas = await this.store.cas.all();
    const bad = new Map<string, 'ca_revoked' | 'ca_expired'>();
    for (const ca of cas) {
      const problem = caProblem(ca, now);
      if (problem) bad.set(ca.id, problem);
    }
    const [expiring, older, underBadCa, sharedCertificates, clientIdConflicts] = await Promise.all([
      this.store.certificates.find({ status: 'ACTIVE', notAfterBefore: new Date(now.getTime() + expiringWithinDays * DAY_MS), limit: LIMIT }),
      this.store.certificates.find({ status: 'ACTIVE', notBeforeBefore: new Date(now.getTime() - 365 * DAY_MS), limit: LIMIT }),
      this.store.certificates.find({ status: 'ACTIVE', caIds: [...bad.keys()], limit: LIMIT }),
      this.store.sightings.find({ kind: 'shared_certificate', limit: LIMIT }),
      this.store.sightings.find({ kind: 'client_id_conflict', limit: LIMIT }),
    ]);
    return {
      generatedAt: now.toISOString(),
      expiringWithinDays,
      expiring: expiring.map(summary),
      older: older.map(summary),
      underBadCa: underBadCa.map((c) => ({ ...summary(c), problem: bad.get(c.caId)! })),
      sharedCertificates,
      clientIdConflicts,
    };
  }
}

function caProblem(ca: CaRecord, now: Date): 'ca_revoked' | 'ca_expired' | undefined {
  if (ca.status === 'REVOKED') return 'ca_revoked';
  if (ca.notAfter.getTime() < now.getTime()) return 'ca_expired';
  return undefined;
}

export function formatReport(r: FleetReport): string {
  const lines: string[] = [`Fleet report, ${r.generatedAt}`, ''];
  const section = (title: string, rows: string[]) => {
    lines.push(`${title}: ${rows.length === 0 ? 'none' : rows.length}`);
    for (const row of rows.slice(0, 50)) lines.push(`  ${row}`);
    if (rows.length > 50) lines.push(`  … and ${rows.length - 50} more`);
    lines.push('');
  };
  const cert = (c: CertificateSummary) => `${c.deviceId.padEnd(24)} serial ${c.serial}  CA ${c.ca}  valid ${c.notBefore.slice(0, 10)} → ${c.notAfter.slice(0, 10)}`;
  section(`Certificates expiring within ${r.expiringWithinDays} days`, r.expiring.map(cert));
  section('Certificates older than 365 days', r.older.map(cert));
  section('Active certificates under a revoked or expired CA', r.underBadCa.map((c) => `${cert(c)}  (${c.problem.replace('_', ' ')})`));
  section('Certificates seen on two live connections at once (shared key?)', r.sharedCertificates.map((s) => `${s.at.toISOString()}  ${s.deviceId ?? '?'}  fingerprint ${s.fingerprint ?? '?'}  ${JSON.stringify(s.details)}`));
  section('Conflicting client ids', r.clientIdConflicts.map((s) => `${s.at.toISOString()}  client id ${s.clientId ?? '?'} presented by ${s.deviceId ?? '?'}  ${JSON.stringify(s.details)}`));
  return lines.join('\n');
}
