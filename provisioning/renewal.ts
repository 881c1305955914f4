// Whether a device may renew the certificate it presents, as a list of small named checks
// over plain facts. The first that refuses decides. The same checks serve POST /v1/renew,
// EST simplereenroll and $fleet/certificates/renew/json.
import { catalogueError, RegistryError, type CodedError } from '../registry/errors.js';
import type { CaPolicy, CertificateRecord, Device } from '../registry/model.js';
import { CredentialError } from './credential-errors.js';

export const RENEWAL_ERRORS = {
  public_key_reused: 'this CA’s policy asks a renewal to bring a new key',
} as const;

export class RenewalError extends catalogueError('RenewalError', RENEWAL_ERRORS) {}

export interface RenewalFacts {
  current: CertificateRecord;
  device: Device;
  policy: CaPolicy;
  now: Date;
}

export interface RenewalCheck {
  name: string;
  run(f: RenewalFacts): CodedError | undefined;
}

/** Checked before the CSR is even read. */
export const renewalChecks: readonly RenewalCheck[] = [
  { name: 'certificate not revoked', run: ({ current }) => (current.status === 'REVOKED' ? new CredentialError('client_certificate_revoked', current.serial) : undefined) },
  {
    // INACTIVE includes a certificate already superseded by a renewal that was seen: it has
    // done its work, and a copy of it must not mint new identities.
    name: 'certificate active',
    run: ({ current }) => (current.status !== 'ACTIVE' ? new CredentialError('client_certificate_inactive', current.status) : undefined),
  },
  {
    name: 'device active',
    run: ({ device }) =>
      device.status === 'DECOMMISSIONED' ? new RegistryError('device_decommissioned', device.id) : device.status === 'DISABLED' ? new RegistryError('device_disabled', device.id) : undefined,
  },
  {
    // RFC 5280 §4.1.2.5 validity, stretched after notAfter by the CA's renewal window (0 by
    // default): a device back from months offline renews with its expired certificate.
    name: 'within validity or the renewal window',
    run: ({ current, policy, now }) => {
      if (now.getTime() < current.notBefore.getTime()) return new CredentialError('client_certificate_expired', `not valid before ${current.notBefore.toISOString()}`);
      const closes = current.notAfter.getTime() + policy.renewalWindowMs;
      if (now.getTime() > closes) return new CredentialError('client_certificate_expired', policy.renewalWindowMs > 0 ? `renewal window closed ${new Date(closes).toISOString()}` : `expired ${current.notAfter.toISOString()}`);
      return undefined;
    },
  },
];

export function renewalRefusal(facts: RenewalFacts): CodedError | undefined {
  for (const check of renewalChecks) {
    const refused = check.run(facts);
    if (refused) return refused;
  }
  return undefined;
}

/** Checked once the CSR is: the key it brings. */
export function keyRefusal(current: CertificateRecord, publicKeySha256: string, policy: CaPolicy): CodedError | undefined {
  return policy.requireNewKey && publicKeySha256 === current.publicKeySha256 ? new RenewalError('public_key_reused') : undefined;
}
