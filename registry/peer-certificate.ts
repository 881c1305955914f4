// What a TLS handshake established about the other end, read once into plain facts. The
// broker (MQTT over mutual TLS) and the API (HTTPS with a client certificate requested)
// both read their peers this way, so both decide on the same facts.
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { children, DerError, expectTag, readTlv } from './der-reader.js';
import { toFingerprint, type Fingerprint } from './ids.js';

export interface PeerCertificateFacts {
  /** Lowercase hex, as the registry spells serials. */
  serial: string;
  fingerprint: Fingerprint;
  /** The subject CN: for our device certificates, the device id. */
  commonName?: string;
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  /** The claim batch a claim certificate names (SAN URI urn:fleet:claim:<batch>). */
  claimBatch?: string;
}

export interface PeerFacts {
  address: string;
  /** The OpenSSL verification error when the chain was not accepted, e.g. CERT_HAS_EXPIRED. */
  chainError?: string;
  certificate?: PeerCertificateFacts;
  /** The certificate's DER, needed only to register an unknown certificate; dropped after admission. */
  der?: Buffer;
}

/** A distinguished name as one line, "C=x, O=y, CN=z" (Node gives it one attribute per line). */
export function nameLine(name: string): string {
  return name.split('\n').join(', ');
}

/** The first CN of a distinguished name as X509Certificate spells it. */
function commonNameOf(name: string): string | undefined {
  for (const attribute of name.split('\n')) if (attribute.startsWith('CN=')) return attribute.slice(3);
  return undefined;
}

// A fleet's devices share a handful of issuers: every connection refers to one string per
// issuer instead of holding a copy of its own.
const issuerNames = new Map<string, string>();
function interned(name: string): string {
  const known = issuerNames.get(name);
  if (known !== undefined) return known;
  if (issuerNames.size < 1024) issuerNames.set(name, name);
  return name;
}

// Node spells the SAN as "URI:urn:fleet:claim:line-7, DNS:…".
const CLAIM_SAN = /(?:^|, )URI:urn:fleet:claim:([^,]*)/;

/** A claim certificate's batch, from its SAN; nothing for any other certificate. */
function claimBatchOf(subjectAltName: string | undefined): { claimBatch?: string } {
  if (!subjectAltName?.includes('urn:fleet:claim:')) return {};
  return { claimBatch: CLAIM_SAN.exec(subjectAltName)?.[1] ?? '' };
}

/**
 * A name as peerFactsOf spells it, from the plain-object form Node gives it (one key per
 * attribute, in order), or undefined where that form could be spelled differently than
 * X509Certificate spells it (RFC 2253 escapes, repeated or unnamed attributes, non-ASCII):
 * then the caller reads the certificate itself.
 */
export function plainNameLine(name: Record<string, unknown> | undefined): string | undefined {
  if (name === undefined) return undefined;
  const parts: string[] = [];
  for (const [key, value] of Object.entries(name)) {
    // A repeated attribute comes as an array, and its place among the others is lost.
    if (typeof value !== 'string' || !/^[A-Za-z]+$/.test(key) || !PLAIN_VALUE.test(value)) return undefined;
    parts.push(`${key}=${value}`);
  }
  return parts.join(', ');
}

// Characters X509Certificate prints as they are (nothing RFC 2253 escapes, no leading or
// trailing space, ASCII only).
const PLAIN_VALUE = /^[A-Za-z0-9._:@/()-](?:[A-Za-z0-9 ._:@/()-]*[A-Za-z0-9._:@/()-])?$/;

/**
 * Whether every RDN of the certificate's issuer and subject holds one attribute. The plain
 * object flattens a multi-valued RDN ("CN=a+O=b") into separate attributes, which
 * X509Certificate spells "CN=a + O=b"; only the DER tells them apart.
 */
function singleValuedNames(der: Buffer): boolean {
  try {
    const certificate = expectTag(readTlv(der, 0), 0x30, 'Certificate');
    const fields = children(der, expectTag(children(der, certificate)[0], 0x30, 'TBSCertificate'));
    // version [0] (absent in v1), serialNumber, signature, issuer, validity, subject
    const at = fields[0]?.tag === 0xa0 ? 1 : 0;
    return [fields[at + 2], fields[at + 4]].every((name) => children(der, expectTag(name, 0x30, 'Name')).every((rdn) => children(der, expectTag(rdn, 0x31, 'RDN')).length === 1));
  } catch (error) {
    if (error instanceof DerError) return false; // the certificate's own parser then decides
    throw error;
  }
}

/** The facts of a certificate as X509Certificate reads it: the reference spelling. */
export function certificateFactsOf(cert: X509Certificate): PeerCertificateFacts {
  return {
    serial: cert.serialNumber.toLowerCase(),
    fingerprint: toFingerprint(cert.fingerprint256),
    commonName: commonNameOf(cert.subject),
    subject: nameLine(cert.subject),
    issuer: interned(nameLine(cert.issuer)),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    ...claimBatchOf(cert.subjectAltName),
  };
}

/**
 * The same facts from the plain object getPeerCertificate(false) returns, spelled the same;
 * a certificate whose names that object cannot spell alike is parsed from its DER instead.
 */
export function plainCertificateFactsOf(cert: PeerCertificate): PeerCertificateFacts {
  const subject = plainNameLine(cert.subject);
  const issuer = plainNameLine(cert.issuer);
  if (subject === undefined || issuer === undefined || !singleValuedNames(cert.raw)) return certificateFactsOf(new X509Certificate(cert.raw));
  const cn = (cert.subject as unknown as Record<string, unknown>).CN;
  return {
    serial: cert.serialNumber.toLowerCase(),
    fingerprint: toFingerprint(cert.fingerprint256),
    commonName: typeof cn === 'string' ? cn : undefined,
    subject,
    issuer: interned(issuer),
    notBefore: new Date(cert.valid_from),
    notAfter: new Date(cert.valid_to),
    ...claimBatchOf(cert.subjectaltname),
  };
}

export function peerFactsOf(socket: TLSSocket): PeerFacts {
  const address = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
  const chainError = socket.authorized ? undefined : String(socket.authorizationError ?? 'UNKNOWN');
  // The leaf only, as the plain object (getPeerCertificate(false)): getPeerX509Certificate
  // copies every certificate of the peer's chain first (X509_dup, an encode and a decode each,
  // and OpenSSL 3.0's key decoding is slow), which cost ~190 µs of broker CPU per connect
  // here, about three times as much. The chain is not needed: the TLS layer has verified it.
  const cert = socket.getPeerCertificate(false) as PeerCertificate | null;
  // With no client certificate it is an empty object.
  if (!cert?.raw) return { address, chainError };
  return { address, chainError, der: cert.raw, certificate: plainCertificateFactsOf(cert) };
}
