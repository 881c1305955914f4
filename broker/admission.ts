// The CONNECT decision, as a list of small named checks over plain data (no sockets, no
// Aedes). The first check that refuses decides; its reason is the one reported. `fleet
// diagnose` walks the same list offline.
import type { Clock } from '../registry/clock.js';
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

// OpenSSL verification errors (X509_V_ERR_*) as Node names them, mapped to our reasons.
const CHAIN_ERRORS: Record<string, Reason> = {
  CERT_HAS_EXPIRED: 'certificate_expired',
  CERT_NOT_YET_VALID: 'certificate_not_yet_valid',
  INVALID_PURPOSE: 'wrong_key_usage',
  UNABLE_TO_GET_ISSUER_CERT: 'unknown_issuer',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unknown_issuer',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unknown_issuer',
  SELF_SIGNED_CERT_IN_CHAIN: 'unknown_issuer',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'unknown_issuer',
  CERT_REVOKED: 'certificate_revoked',
};

/** The reason for an OpenSSL chain error on a certificate with this issuer. */
export function chainReason(chainError: string, issuer: string, knownIssuer?: (issuer: string) => boolean): Reason {
  const reason = CHAIN_ERRORS[chainError] ?? 'certificate_invalid';
  // The issuer is a CA this fleet knows, yet the chain did not verify: a link is missing
  // (an intermediate the device should send, or one this broker does not trust yet).
  if (reason === 'unknown_issuer' && chainError !== 'DEPTH_ZERO_SELF_SIGNED_CERT' && knownIssuer?.(issuer)) return 'chain_incomplete';
  return reason;
}

export const chainVerified: Check = {
  name: 'chain verified by TLS',
  run: (ctx, deps) => (ctx.peer.chainError === undefined ? undefined : refuse(chainReason(ctx.peer.chainError, ctx.certificate.issuer, deps.knownIssuer), ctx.peer.chainError)),
};

export const withinValidity: Check = {
  // RFC 5280 §4.1.2.5: valid from notBefore through notAfter, both inclusive. Checked
  // again on our own clock, which also covers a resumed TLS session.
  name: 'within validity',
  run: ({ certificate: c }, { now }) => {
    const t = now().getTime();
    if (t < c.notBefore.getTime()) return refuse('certificate_not_yet_valid', c.notBefore.toISOString());
    if (t > c.notAfter.getTime()) return refuse('certificate_expired', c.notAfter.toISOString());
    return undefined;
  },
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

/** The registry's checks, in order, over what it says of the certificate. */
const registryChecks: readonly ((record: AdmissionRecord, certificate: PeerCertificateFacts) => Refused | undefined)[] = [
  (r) => (r.certificateStatus === 'REVOKED' ? refuse('certificate_revoked') : undefined),
  (r) => (r.certificateStatus !== 'ACTIVE' ? refuse('certificate_inactive', r.certificateStatus) : undefined),
  (r) => (r.deviceStatus !== 'ACTIVE' ? refuse('device_disabled', r.deviceStatus) : undefined),
  (r, c) => (r.deviceId !== c.commonName ? refuse('client_id_mismatch', 'certificate CN differs from its registry device') : undefined),
];

/** The registry's word, checked last because it is the only check that may wait on I/O. */
export function registryVerdict(standing: Standing, certificate: PeerCertificateFacts, waive?: Reason): Verdict {
  if (standing.kind === 'revoked') return refuse('certificate_revoked', 'listed by its CA’s CRL');
  if (standing.kind === 'unregistered') {
    // Nothing more to check without a record; only a grant pinned to this certificate gets here.
    return waive === 'unregistered_certificate' ? { ok: true, deviceId: certificate.commonName ?? '', waived: waive } : refuse('unregistered_certificate');
  }
  for (const check of registryChecks) {
    const refused = check(standing.record, certificate);
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
