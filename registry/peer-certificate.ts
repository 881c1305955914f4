// What a TLS handshake established about the other end, read once into plain facts. The
// broker (MQTT over mutual TLS) and the API (HTTPS with a client certificate requested)
// both read their peers this way, so both decide on the same facts.
import { hash, X509Certificate } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { children, DerError, expectTag, readTlv, type Tlv } from './der-reader.js';
import { toFingerprint, type Fingerprint } from './ids.js';
import { clearOpenSslErrors } from './openssl-errors.js';

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
const CLAIM_MARK = Buffer.from('urn:fleet:claim:');

/** A claim certificate's batch, from its SAN; nothing for any other certificate. */
function claimBatchOf(subjectAltName: string | undefined): { claimBatch?: string } {
  if (!subjectAltName?.includes('urn:fleet:claim:')) return {};
  return { claimBatch: CLAIM_SAN.exec(subjectAltName)?.[1] ?? '' };
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

// The attribute types a fleet's names are made of, by the DER of their OIDs, with the short
// names X509Certificate prints for them. A name with any other type is left to it.
const ATTRIBUTE_NAMES = new Map([
  ['550403', 'CN'],
  ['550406', 'C'],
  ['550407', 'L'],
  ['550408', 'ST'],
  ['55040a', 'O'],
  ['55040b', 'OU'],
  ['550405', 'serialNumber'],
]);
// UTF8String, PrintableString, IA5String: with a plain value (below) each is its own spelling.
const STRING_TAGS = new Set([0x0c, 0x13, 0x16]);
// Characters X509Certificate prints as they are (nothing RFC 2253 escapes, no leading or
// trailing space, ASCII only).
const PLAIN_VALUE = /^[A-Za-z0-9._:@/()-](?:[A-Za-z0-9 ._:@/()-]*[A-Za-z0-9._:@/()-])?$/;

/** Thrown where the DER holds something only X509Certificate should spell. */
class NotPlain extends Error {}

/** A Name as X509Certificate spells it, on one line, and its first CN; NotPlain for multi-valued RDNs, other attribute types, values it would escape. */
function derName(der: Buffer, name: Tlv | undefined): { line: string; commonName?: string } {
  const parts: string[] = [];
  let commonName: string | undefined;
  for (const rdn of children(der, expectTag(name, 0x30, 'Name'))) {
    const attributes = children(der, expectTag(rdn, 0x31, 'RDN'));
    if (attributes.length !== 1) throw new NotPlain();
    const [type, value] = children(der, expectTag(attributes[0], 0x30, 'AttributeTypeAndValue'));
    const oid = expectTag(type, 0x06, 'OID');
    const short = ATTRIBUTE_NAMES.get(der.toString('hex', oid.start, oid.end));
    if (short === undefined || !value || !STRING_TAGS.has(value.tag)) throw new NotPlain();
    const text = der.toString('latin1', value.start, value.end);
    if (!PLAIN_VALUE.test(text)) throw new NotPlain();
    if (short === 'CN') commonName ??= text;
    parts.push(`${short}=${text}`);
  }
  return { line: parts.join(', '), commonName };
}

const UTC_TIME = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/;
const GENERALIZED_TIME = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/;

/** A UTCTime or GeneralizedTime to the second; NotPlain for any other form or an impossible date. */
function derTime(der: Buffer, time: Tlv | undefined): Date {
  const text = time ? der.toString('latin1', time.start, time.end) : '';
  const match = time?.tag === 0x17 ? UTC_TIME.exec(text) : time?.tag === 0x18 ? GENERALIZED_TIME.exec(text) : null;
  if (!match) throw new NotPlain();
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [number, number, number, number, number, number];
  // RFC 5280 §4.1.2.5.1: a two-digit year of 50 or more is 19YY.
  const fullYear = time!.tag === 0x17 ? (year >= 50 ? 1900 + year : 2000 + year) : year;
  const date = new Date(Date.UTC(fullYear, month - 1, day, hour, minute, second));
  // Date.UTC would carry a 31st of April into May; such a certificate is left to X509Certificate.
  if (date.getUTCFullYear() !== fullYear || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) throw new NotPlain();
  return date;
}

/** A positive INTEGER in hex as X509Certificate spells a serial (no leading zero bytes); NotPlain if negative. */
function derSerial(der: Buffer, serial: Tlv | undefined): string {
  const integer = expectTag(serial, 0x02, 'serialNumber');
  if (integer.end === integer.start || der[integer.start]! & 0x80) throw new NotPlain();
  let from = integer.start;
  while (from < integer.end - 1 && der[from] === 0) from++;
  const hex = der.toString('hex', from, integer.end);
  return hex === '00' ? '0' : hex;
}

/**
 * A certificate's facts read from its DER, spelled as certificateFactsOf spells them, at
 * about a tenth of what decoding it into an X509Certificate costs (OpenSSL 3.0 decodes its
 * key as well), which would be paid on every connect. undefined for a certificate with
 * anything X509Certificate might spell differently (see derName), an unusual time or serial,
 * or a claim SAN: those are for X509Certificate to read.
 */
export function plainCertificateFactsOf(der: Buffer): PeerCertificateFacts | undefined {
  try {
    if (der.includes(CLAIM_MARK)) return undefined;
    const certificate = expectTag(readTlv(der, 0), 0x30, 'Certificate');
    if (certificate.end !== der.length) return undefined;
    const fields = children(der, expectTag(children(der, certificate)[0], 0x30, 'TBSCertificate'));
    // version [0] (absent in v1), serialNumber, signature, issuer, validity, subject
    const [serial, , issuer, validity, subject] = fields.slice(fields[0]?.tag === 0xa0 ? 1 : 0);
    const [notBefore, notAfter] = children(der, expectTag(validity, 0x30, 'Validity'));
    const subjectName = derName(der, subject);
    return {
      serial: derSerial(der, serial),
      fingerprint: hash('sha256', der, 'hex') as Fingerprint,
      commonName: subjectName.commonName,
      subject: subjectName.line,
      issuer: interned(derName(der, issuer).line),
      notBefore: derTime(der, notBefore),
      notAfter: derTime(der, notAfter),
    };
  } catch (error) {
    if (error instanceof NotPlain || error instanceof DerError) return undefined;
    throw error;
  }
}

/** A certificate's facts: from its DER where that is plain, otherwise as X509Certificate reads it. */
export function derCertificateFactsOf(der: Buffer): PeerCertificateFacts {
  return plainCertificateFactsOf(der) ?? certificateFactsOf(new X509Certificate(der));
}

/**
 * The certificate the peer sent, from the TLS session OpenSSL keeps for the connection
 * (RFC 5246's session state, encoded by i2d_SSL_SESSION: the peer certificate is its
 * field [3], as sent). getPeerCertificate(false) costs about seven times as much per connect:
 * it also builds an object of every field, fingerprints in three hashes and the public key
 * decoded; getPeerX509Certificate copies the peer's whole chain. The session holds the
 * connection's secrets too, so its bytes are wiped once the certificate is copied out.
 * undefined when the session says nothing the reader knows; null when it holds no certificate.
 */
export function sessionPeerCertificate(socket: TLSSocket): Buffer | null | undefined {
  const session = socket.getSession();
  if (!session) return undefined;
  try {
    const fields = children(session, expectTag(readTlv(session, 0), 0x30, 'SSL_SESSION'));
    // SSL_SESSION_ASN1 version 1 (ssl/ssl_asn1.c), the only one OpenSSL has written.
    const version = expectTag(fields[0], 0x02, 'version');
    if (version.end - version.start !== 1 || session[version.start] !== 1) return undefined;
    const peer = fields.find((field) => field.tag === 0xa3);
    if (!peer) return null;
    const certificate = expectTag(readTlv(session, peer.start, peer.end), 0x30, 'Certificate');
    if (certificate.end !== peer.end) return undefined;
    return Buffer.from(session.subarray(certificate.offset, certificate.end));
  } catch (error) {
    if (error instanceof DerError) return undefined;
    throw error;
  } finally {
    session.fill(0);
  }
}

/** The peer's certificate as DER. */
function peerCertificateDer(socket: TLSSocket): Buffer | undefined {
  // A chain OpenSSL refused leaves its error on OpenSSL's error queue, where the next TLS read
  // of any connection would find it and fail (native/openssl-errors.c). getPeerCertificate
  // clears the queue as it returns; reading the session does not, so the queue is cleared
  // first, or, without the addon, the certificate is read with getPeerCertificate.
  if (clearOpenSslErrors) {
    clearOpenSslErrors();
    const fromSession = sessionPeerCertificate(socket);
    if (fromSession) return fromSession;
  }
  // With no client certificate it is an empty object.
  const cert = socket.getPeerCertificate(false) as PeerCertificate | null;
  return cert?.raw ?? undefined;
}

export function peerFactsOf(socket: TLSSocket): PeerFacts {
  const address = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
  const chainError = socket.authorized ? undefined : String(socket.authorizationError ?? 'UNKNOWN');
  // The leaf only: the chain is not needed, the TLS layer has verified it.
  const der = peerCertificateDer(socket);
  if (!der) return { address, chainError };
  return { address, chainError, der, certificate: derCertificateFactsOf(der) };
}
