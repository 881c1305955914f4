// The TLS edge reads a peer's certificate from the plain object getPeerCertificate(false)
// returns (getPeerX509Certificate copies the peer's whole chain first, about three times the
// CPU per connect). Every fact must come out as X509Certificate spells it, since issuers are
// compared with the trusted CAs' subjects read that way: names the plain object could spell
// differently are read from the certificate itself.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { generateKeyPair } from '../../provisioning/pki/keys.js';
import { x509 } from '../../provisioning/pki/x509.js';
import { certificateFactsOf, plainCertificateFactsOf, plainNameLine } from '../../registry/peer-certificate.js';

const DAY = 24 * 60 * 60 * 1000;

async function certificateNamed(name: string, san?: string): Promise<X509Certificate> {
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + DAY),
    extensions: san ? [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: san }])] : [],
  });
  return new X509Certificate(Buffer.from(cert.rawData));
}

describe('peer certificate facts', () => {
  const names = [
    'CN=thermostat-42',
    'C=DE, O=Fleet Identity, CN=Fleet Issuing CA 1',
    'CN=gw.line-7:unit_3',
    'CN=a\\, b', // a comma, escaped by RFC 2253
    'CN=a\\+b, O=x',
    'CN=\\ leading',
    'CN="quoted"',
    'O=Ünïcode, CN=dev',
    'OU=one, OU=two, CN=repeated',
    'CN=first, O=o, CN=second',
    '1.3.6.1.4.1.99999.1=private, CN=unnamed-attribute',
    'CN=dev-1+O=acme, C=DE', // a multi-valued RDN, which the plain object flattens
  ];

  for (const name of names) {
    it(`reads ${name} as X509Certificate does`, async () => {
      const cert = await certificateNamed(name);
      assert.deepEqual(plainCertificateFactsOf(cert.toLegacyObject()), certificateFactsOf(cert));
    });
  }

  it('reads a claim certificate’s batch from its SAN', async () => {
    const cert = await certificateNamed('CN=claim', 'urn:fleet:claim:line-7');
    const facts = plainCertificateFactsOf(cert.toLegacyObject());
    assert.equal(facts.claimBatch, 'line-7');
    assert.deepEqual(facts, certificateFactsOf(cert));
  });

  it('spells plain names itself, and leaves every name it could spell differently to the certificate', async () => {
    const plain = (name: string) => certificateNamed(name).then((c) => plainNameLine(c.toLegacyObject().subject));
    assert.equal(await plain('C=DE, O=Fleet Identity, CN=Fleet Issuing CA 1'), 'C=DE, O=Fleet Identity, CN=Fleet Issuing CA 1');
    for (const name of ['CN=a\\, b', 'OU=one, OU=two, CN=repeated', 'O=Ünïcode, CN=dev', 'CN=\\ leading', '1.3.6.1.4.1.99999.1=private, CN=unnamed-attribute']) {
      assert.equal(await plain(name), undefined, name);
    }
  });
});
