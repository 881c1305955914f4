// The TLS edge: read what the handshake established, once, into plain facts. Everything
// past this file works on PeerFacts and never touches a socket's certificate API.
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { toFingerprint, type Fingerprint } from '../registry/ids.js';

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

type NameFields = Record<string, string | string[] | undefined>;

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function formatName(name: NameFields | undefined): string {
  if (!name) return '';
  return Object.entries(name)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
    .join(', ');
}

export function peerFactsOf(socket: TLSSocket): PeerFacts {
  const address = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
  // getPeerCertificate(false): the leaf only. The full chain would be parsed and kept for
  // nothing; the TLS layer has already verified it.
  const cert = socket.getPeerCertificate(false);
  const chainError = socket.authorized ? undefined : String(socket.authorizationError ?? 'UNKNOWN');
  if (!cert || !cert.raw) return { address, chainError };
  return {
    address,
    chainError,
    der: cert.raw,
    certificate: {
      serial: cert.serialNumber.toLowerCase(),
      fingerprint: toFingerprint(cert.fingerprint256),
      commonName: first((cert.subject as NameFields | undefined)?.CN),
      subject: formatName(cert.subject),
      issuer: formatName(cert.issuer),
      notBefore: new Date(cert.valid_from),
      notAfter: new Date(cert.valid_to),
      ...claimBatchOf(cert.subjectaltname),
    },
  };
}

// Node spells the SAN as "URI:urn:fleet:claim:line-7, DNS:…".
const CLAIM_SAN = /(?:^|, )URI:urn:fleet:claim:([^,]*)/;

/** A claim certificate's batch, from its SAN; nothing for any other certificate. */
function claimBatchOf(subjectAltName: string | undefined): { claimBatch?: string } {
  if (!subjectAltName?.includes('urn:fleet:claim:')) return {};
  return { claimBatch: CLAIM_SAN.exec(subjectAltName)?.[1] ?? '' };
}

/** A certificate's subject as peerFactsOf spells names ("CN=a, O=b"), for comparing the two. */
export function subjectLine(certificate: X509Certificate): string {
  return certificate.subject.split('\n').join(', ');
}

/** A certificate's issuer, spelled the same way. */
export function issuerLine(certificate: X509Certificate): string {
  return certificate.issuer.split('\n').join(', ');
}

/** Every certificate in a PEM bundle. */
export function parseCertificates(pem: string): X509Certificate[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]));
}
