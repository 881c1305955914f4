// What a TLS handshake established about the other end, read once into plain facts. The
// broker (MQTT over mutual TLS) and the API (HTTPS with a client certificate requested)
// both read their peers this way, so both decide on the same facts.
import type { TLSSocket } from 'node:tls';
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

export function peerFactsOf(socket: TLSSocket): PeerFacts {
  const address = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
  const chainError = socket.authorized ? undefined : String(socket.authorizationError ?? 'UNKNOWN');
  // The leaf only, as an X509Certificate whose fields are read when asked for:
  // getPeerCertificate would build all of them (three fingerprints among them) every time.
  // The chain is not needed: the TLS layer has verified it.
  const cert = socket.getPeerX509Certificate();
  if (!cert) return { address, chainError };
  return {
    address,
    chainError,
    der: cert.raw,
    certificate: {
      serial: cert.serialNumber.toLowerCase(),
      fingerprint: toFingerprint(cert.fingerprint256),
      commonName: commonNameOf(cert.subject),
      subject: nameLine(cert.subject),
      issuer: interned(nameLine(cert.issuer)),
      notBefore: new Date(cert.validFrom),
      notAfter: new Date(cert.validTo),
      ...claimBatchOf(cert.subjectAltName),
    },
  };
}
