// Extensions per kind of certificate, per RFC 5280 §4.2. One table, so a device certificate
// and a server certificate can never drift into each other's shape.
import { x509 } from './x509.js';

/** The SAN URI that names a device in its certificate (written by device-certificate.ts). */
export const DEVICE_URI_PREFIX = 'urn:fleet:device:';
/** The SAN URI that names the claim batch in a claim certificate. */
export const CLAIM_URI_PREFIX = 'urn:fleet:claim:';
/** The SAN URI that names a factory station in its client certificate. */
export const STATION_URI_PREFIX = 'urn:fleet:station:';

const { KeyUsageFlags: KU, ExtendedKeyUsage: EKU } = x509;

export interface KeyIds {
  /** Subject key identifier of the certified key (hex). */
  subject: string;
  /** Key identifier of the issuing CA (hex); absent for a self-signed root. */
  authority?: string;
}

/** Root: CA with no path length limit of its own below; signs CAs and CRLs only. */
export function rootCaExtensions(ids: KeyIds): x509.Extension[] {
  return [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(KU.keyCertSign | KU.cRLSign, true),
    new x509.SubjectKeyIdentifierExtension(ids.subject),
  ];
}

/**
 * Issuing CA: signs end-entity certificates and CRLs; with pathLength 0 it may sign no
 * further CA, without one it may.
 */
export function issuingCaExtensions(ids: KeyIds & { authority: string }, pathLength?: number, crlUrl?: string): x509.Extension[] {
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(true, pathLength, true),
    new x509.KeyUsagesExtension(KU.keyCertSign | KU.cRLSign | KU.digitalSignature, true),
    new x509.SubjectKeyIdentifierExtension(ids.subject),
    new x509.AuthorityKeyIdentifierExtension(ids.authority),
  ];
  if (crlUrl) extensions.push(new x509.CRLDistributionPointsExtension([crlUrl], false));
  return extensions;
}

/** Broker and API: a TLS server for the given DNS names and IP addresses. */
export function serverExtensions(ids: KeyIds & { authority: string }, dnsNames: string[], ips: string[], crlUrl?: string): x509.Extension[] {
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(KU.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([EKU.serverAuth], false),
    new x509.SubjectKeyIdentifierExtension(ids.subject),
    new x509.AuthorityKeyIdentifierExtension(ids.authority),
    new x509.SubjectAlternativeNameExtension(
      [...dnsNames.map((value) => ({ type: 'dns' as const, value })), ...ips.map((value) => ({ type: 'ip' as const, value }))],
      false,
    ),
  ];
  if (crlUrl) extensions.push(new x509.CRLDistributionPointsExtension([crlUrl], false));
  return extensions;
}

/**
 * A TLS client that is not a device: named by its SAN URI alone, with no device URI and a
 * CN no device id can have (it has a space), so it can never pass for a device identity.
 */
function nonDeviceClientExtensions(ids: KeyIds & { authority: string }, uri: string, crlUrl: string): x509.Extension[] {
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(KU.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([EKU.clientAuth], false),
    new x509.SubjectKeyIdentifierExtension(ids.subject),
    new x509.AuthorityKeyIdentifierExtension(ids.authority),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }], false),
    new x509.CRLDistributionPointsExtension([crlUrl], false),
  ];
}

/** Claim certificate: shared by a production batch; the broker routes it by its claim URI to claim sessions only. */
export function claimExtensions(ids: KeyIds & { authority: string }, batchId: string, crlUrl: string): x509.Extension[] {
  return nonDeviceClientExtensions(ids, `${CLAIM_URI_PREFIX}${batchId}`, crlUrl);
}

/** A factory station, a TLS client of the API; the registry knows it by the certificate's fingerprint. */
export function stationExtensions(ids: KeyIds & { authority: string }, name: string, crlUrl: string): x509.Extension[] {
  return nonDeviceClientExtensions(ids, `${STATION_URI_PREFIX}${name}`, crlUrl);
}
