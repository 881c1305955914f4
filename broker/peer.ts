// The TLS edge: what the handshake established, read once into plain facts. Everything
// past this file works on PeerFacts and never touches a socket's certificate API.
import { X509Certificate } from 'node:crypto';
import { nameLine } from '../registry/peer-certificate.js';

// The facts themselves are read in registry/, where the API reads its peers the same way.
export { peerFactsOf, type PeerCertificateFacts, type PeerFacts } from '../registry/peer-certificate.js';

/** A certificate's subject as peerFactsOf spells names ("CN=a, O=b"), for comparing the two. */
export function subjectLine(certificate: X509Certificate): string {
  return nameLine(certificate.subject);
}

/** A certificate's issuer, spelled the same way. */
export function issuerLine(certificate: X509Certificate): string {
  return nameLine(certificate.issuer);
}

/** Every certificate in a PEM bundle. */
export function parseCertificates(pem: string): X509Certificate[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]));
}
