// The certificate list a TLS server sends: its own certificate, then the CAs that certify it,
// up to but not including the root (RFC 8446 §4.4.2: the trust anchor may be omitted, and
// the peer has it). Sent whole, a device needs only the root; sent alone, OpenSSL would
// rebuild the chain from its trust store on every handshake, which costs a chain
// verification per connection.
import { X509Certificate } from 'node:crypto';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

const selfSigned = (c: X509Certificate) => c.subject === c.issuer && c.checkIssued(c);

/** `certPem` followed by its issuers from `caPem`, root excluded; a PEM that already holds a chain is kept as it is. */
export function withIntermediates(certPem: string, caPem: string): string {
  const given = certPem.match(PEM_CERTIFICATE) ?? [];
  if (given.length !== 1) return certPem;
  const cas = (caPem.match(PEM_CERTIFICATE) ?? []).map((pem) => ({ pem, certificate: new X509Certificate(pem) }));
  const chain = [given[0]];
  let current = new X509Certificate(given[0]);
  for (let depth = 0; depth < cas.length; depth++) {
    const issuer = cas.find((ca) => current.checkIssued(ca.certificate) && current.verify(ca.certificate.publicKey));
    if (!issuer || selfSigned(issuer.certificate)) break;
    chain.push(issuer.pem);
    current = issuer.certificate;
  }
  return chain.join('\n') + '\n';
}
