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
    },
  };
}
