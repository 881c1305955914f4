// The checks a presented certificate goes through, shared by every way in: the broker at
// MQTT CONNECT and the API for a client certificate. Each returns a problem from one closed
// list (the broker's refusal reasons are a superset of it), never a bare boolean.
import type { PeerCertificateFacts } from './peer-certificate.js';
import type { AdmissionRecord } from './model.js';

export type CertificateProblem =
  | 'unknown_issuer'
  | 'chain_incomplete'
  | 'certificate_expired'
  | 'certificate_not_yet_valid'
  | 'wrong_key_usage'
  | 'certificate_invalid'
  | 'certificate_revoked'
  | 'certificate_inactive'
  | 'device_disabled'
  | 'client_id_mismatch';

export interface Problem {
  reason: CertificateProblem;
  detail?: string;
}

const problem = (reason: CertificateProblem, detail?: string): Problem => ({ reason, detail });

// OpenSSL verification errors (X509_V_ERR_*) as Node names them, mapped to problems.
const CHAIN_ERRORS: Record<string, CertificateProblem> = {
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

/** The problem an OpenSSL chain error means for a certificate with this issuer. */
export function chainReason(chainError: string, issuer: string, knownIssuer?: (issuer: string) => boolean): CertificateProblem {
  const reason = CHAIN_ERRORS[chainError] ?? 'certificate_invalid';
  // The issuer is a CA this fleet knows, yet the chain did not verify: a link is missing
  // (an intermediate the device should send, or one this side does not trust yet).
  if (reason === 'unknown_issuer' && chainError !== 'DEPTH_ZERO_SELF_SIGNED_CERT' && knownIssuer?.(issuer)) return 'chain_incomplete';
  return reason;
}

/**
 * RFC 5280 §4.1.2.5: valid from notBefore through notAfter, both inclusive. Checked on our
 * own (injected) clock, which also covers a resumed TLS session.
 */
export function validityProblem(c: Pick<PeerCertificateFacts, 'notBefore' | 'notAfter'>, now: Date): Problem | undefined {
  const t = now.getTime();
  if (t < c.notBefore.getTime()) return problem('certificate_not_yet_valid', c.notBefore.toISOString());
  if (t > c.notAfter.getTime()) return problem('certificate_expired', c.notAfter.toISOString());
  return undefined;
}

/** What the registry says of the certificate, checked in order. */
export const recordChecks: readonly ((record: AdmissionRecord, certificate: PeerCertificateFacts) => Problem | undefined)[] = [
  (r) => (r.certificateStatus === 'REVOKED' ? problem('certificate_revoked') : undefined),
  (r) => (r.certificateStatus !== 'ACTIVE' ? problem('certificate_inactive', r.certificateStatus) : undefined),
  (r) => (r.deviceStatus !== 'ACTIVE' ? problem('device_disabled', r.deviceStatus) : undefined),
  (r, c) => (r.deviceId !== c.commonName ? problem('client_id_mismatch', 'certificate CN differs from its registry device') : undefined),
];
