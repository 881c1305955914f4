// The CONNECT decision, as a list of small named checks over plain data (no sockets, no
// Aedes). The first check that refuses decides; its reason is the one reported. `fleet
// diagnose` walks the same list offline.
import type { Clock } from '../registry/clock.js';
import { chainReason, recordChecks, validityProblem, type Problem } from '../registry/certificate-checks.js';
import type { AdmissionRecord } from '../registry/model.js';
import type { PeerCertificateFacts, PeerFacts } from './peer.js';
import type { Reason } from './reasons.js';

/**
 * What the registry says of a certificate, as the verdict cache hands it out; `revoked` is a
 * certificate the registry never knew that its CA's own CRL lists.
 */
export type Standing = { kind: 'registered'; record: AdmissionRecord } | { kind: 'unregistered' } | { kind: 'revoked' };

export interface AdmissionRequest {
  peer: PeerFacts;
  clientId: string;
}

/** What the checks over TLS facts alone need. */
export interface CheckDeps {
  now: Clock;
  /** Whether an issuer name belongs to a CA the registry knows (an unknown issuer then means a missing link). */
  knownIssuer?: (issuer: string) => boolean;
}

export interface AdmissionDeps extends CheckDeps {
  /** Rejects when the registry cannot answer and nothing fresh is cached. */
  standing(certificate: PeerCertificateFacts): Promise<Standing>;
}

export interface AdmissionOptions {
  /** One failure to let pass (break-glass); every other check still applies. */
  waive?: Reason;
}

export type Verdict =
  | { ok: true; deviceId: string; record?: AdmissionRecord; waived?: Reason }
  | { ok: false; reason: Reason; detail?: string };

export type Refused = Extract<Verdict, { ok: false }>;
export type CheckContext = AdmissionRequest & { certificate: PeerCertificateFacts };
export type Check = { name: string; run(ctx: CheckContext, deps: CheckDeps): Refused | undefined };

const refuse = (reason: Reason, detail?: string): Refused => ({ ok: false, reason, detail });

const refusal = (p: Problem | undefined): Refused | undefined => (p ? refuse(p.reason, p.detail) : undefined);

export const chainVerified: Check = {
  name: 'chain verified by TLS',
  run: (ctx, deps) => (ctx.peer.chainError === undefined ? undefined : refuse(chainReason(ctx.peer.chainError, ctx.certificate.issuer, deps.knownIssuer), ctx.peer.chainError)),
};

export const withinValidity: Check = {
  // RFC 5280 §4.1.2.5 (see registry/certificate-checks.ts), on our own clock, which also
  // covers a resumed TLS session.
  name: 'within validity',
  run: ({ certificate }, { now }) => refusal(validityProblem(certificate, now())),
};

/** Runs checks in order; the first refusal decides (unless it is the one waived). */
export function firstRefusal(checks: readonly Check[], ctx: CheckContext, deps: CheckDeps, waive?: Reason): Refused | undefined {
  for (const check of checks) {
    const refused = check.run(ctx, deps);
    if (refused && refused.reason !== waive) return refused;
  }
  return undefined;
}

/**
 * Checks that need only the TLS facts and the CONNECT packet, in the order they run, once a
 * certificate was presented at all.
 */
export const connectChecks: readonly Check[] = [
  chainVerified,
  withinValidity,
  {
    // Invariant 4: identity comes from the certificate. Aedes would otherwise hand this
    // client the session of whichever device it named.
    name: 'client id is the certificate device id',
    run: ({ certificate: c, clientId }) => (c.commonName === clientId ? undefined : refuse('client_id_mismatch', `client id ${JSON.stringify(clientId)}`)),
  },
];

/** The registry's word, checked last because it is the only check that may wait on I/O. */
export function registryVerdict(standing: Standing, certificate: PeerCertificateFacts, waive?: Reason): Verdict {
  if (standing.kind === 'revoked') return refuse('certificate_revoked', 'listed by its CA’s CRL');
  if (standing.kind === 'unregistered') {
    // Nothing more to check without a record; only a grant pinned to this certificate gets here.
    return waive === 'unregistered_certificate' ? { ok: true, deviceId: certificate.commonName ?? '', waived: waive } : refuse('unregistered_certificate');
  }
  for (const check of recordChecks) {
    const refused = refusal(check(standing.record, certificate));
    if (refused && refused.reason !== waive) return refused;
  }
  return { ok: true, deviceId: standing.record.deviceId, record: standing.record, ...(waive ? { waived: waive } : {}) };
}

export async function decideAdmission(request: AdmissionRequest, deps: AdmissionDeps, options: AdmissionOptions = {}): Promise<Verdict> {
  // With no certificate Node still reports a chain error (UNABLE_TO_GET_ISSUER_CERT), which
  // would read as an unknown issuer; the missing certificate is the real reason.
  const certificate = request.peer.certificate;
  if (!certificate) return refuse('no_client_certificate');
  const { waive } = options;
  const refused = firstRefusal(connectChecks, { ...request, certificate }, deps, waive);
  if (refused) return refused;
  let standing: Standing;
  try {
    standing = await deps.standing(certificate);
  } catch (error) {
    // Only a grant pinned to this certificate gets here: the registry cannot be asked.
    if (waive === 'registry_unavailable') return { ok: true, deviceId: certificate.commonName ?? '', waived: waive };
    return refuse('registry_unavailable', error instanceof Error ? error.message : String(error));
  }
  return registryVerdict(standing, certificate, waive);
}
