// The TLS edge reads a peer's certificate from the TLS session's DER and its facts from
// that DER itself: decoding it into an X509Certificate, or asking Node for its certificate
// object, costs several times as much per connect. Every fact must come out as
// X509Certificate spells it, since issuers are compared with the trusted CAs' subjects read
// that way: names the DER reader could spell differently are left to X509Certificate.
import assert from 'node:assert/strict';
import { constants, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls, { type TLSSocket } from 'node:tls';
import { generateKeyPair } from '../../provisioning/pki/keys.js';
import { x509, type CryptoKeyPair } from '../../provisioning/pki/x509.js';
import { clearOpenSslErrors, opensslErrorsUnavailable } from '../../registry/openssl-errors.js';
import { certificateFactsOf, derCertificateFactsOf, peerFactsOf, plainCertificateFactsOf, sessionPeerCertificate } from '../../registry/peer-certificate.js';

const DAY = 24 * 60 * 60 * 1000;

interface Made {
  certificate: X509Certificate;
  keyPem: string;
  pem: string;
}

interface Issuer {
  name: string;
  keys: CryptoKeyPair;
}

async function certificateNamed(name: string, options: { san?: string; serialNumber?: string; notBefore?: Date; notAfter?: Date; issuedBy?: Issuer; ca?: boolean } = {}): Promise<Made & Issuer> {
  const keys = await generateKeyPair();
  const common = {
    serialNumber: options.serialNumber,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    notBefore: options.notBefore ?? new Date(Date.now() - DAY),
    notAfter: options.notAfter ?? new Date(Date.now() + DAY),
    extensions: [
      ...(options.san ? [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: options.san }])] : []),
      ...(options.ca ? [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)] : []),
    ],
  };
  const cert = options.issuedBy
    ? await x509.X509CertificateGenerator.create({ ...common, subject: name, issuer: options.issuedBy.name, publicKey: keys.publicKey, signingKey: options.issuedBy.keys.privateKey })
    : await x509.X509CertificateGenerator.createSelfSigned({ ...common, name, keys });
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  return { name, keys, certificate: new X509Certificate(Buffer.from(cert.rawData)), pem: cert.toString('pem'), keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8}\n-----END PRIVATE KEY-----\n` };
}

describe('peer certificate facts from DER', () => {
  const plainNames = [
    'CN=thermostat-42',
    'C=DE, O=Fleet Identity, CN=Fleet Issuing CA 1',
    'CN=gw.line-7:unit_3',
    'C=US, ST=Oregon, L=Portland, O=Acme, OU=Line 7, CN=dev-9',
    '2.5.4.5=SN-0042, CN=meter', // serialNumber
    'CN="quoted"', // quotes in the generator's syntax, none in the certificate
    'OU=one, OU=two, CN=repeated', // repeated attribute types keep their order in the DER
    'CN=first, O=o, CN=second', // the first CN is the common name
    'O=no common name',
  ];
  const escapedOrUnusual = [
    'CN=a\\, b', // a comma, escaped by RFC 2253
    'CN=a\\+b, O=x',
    'CN=\\ leading',
    'O=Ünïcode, CN=dev',
    '1.3.6.1.4.1.99999.1=private, CN=unnamed-attribute',
    'CN=dev-1+O=acme, C=DE', // a multi-valued RDN, which X509Certificate spells 'CN=dev-1 + O=acme'
    'E=ops@example.com, CN=mailer', // an attribute type the reader does not name
  ];

  for (const name of plainNames) {
    it(`reads ${name} from the DER as X509Certificate does`, async () => {
      const { certificate } = await certificateNamed(name);
      const facts = plainCertificateFactsOf(certificate.raw);
      assert.ok(facts, 'read from the DER');
      assert.deepEqual(facts, certificateFactsOf(certificate));
    });
  }

  for (const name of escapedOrUnusual) {
    it(`leaves ${name} to X509Certificate`, async () => {
      const { certificate } = await certificateNamed(name);
      assert.equal(plainCertificateFactsOf(certificate.raw), undefined);
      assert.deepEqual(derCertificateFactsOf(certificate.raw), certificateFactsOf(certificate));
    });
  }

  it('spells serials as X509Certificate does: no leading zero bytes, a high bit padded in DER', async () => {
    for (const serialNumber of ['01', '0a0b', '00ff', '7f', '00800000000000000001', '3a5f9e0c77d21b4e8a6c', '0000000000000005']) {
      const { certificate } = await certificateNamed('CN=serials', { serialNumber });
      assert.deepEqual(plainCertificateFactsOf(certificate.raw), certificateFactsOf(certificate), serialNumber);
    }
  });

  it('reads UTCTime and GeneralizedTime (from 2050 on) alike', async () => {
    const { certificate } = await certificateNamed('CN=long-lived', { notBefore: new Date('1999-12-31T23:59:59Z'), notAfter: new Date('2061-02-28T12:00:00Z') });
    const facts = plainCertificateFactsOf(certificate.raw);
    assert.ok(facts);
    assert.equal(facts.notBefore.toISOString(), '1999-12-31T23:59:59.000Z');
    assert.equal(facts.notAfter.toISOString(), '2061-02-28T12:00:00.000Z');
    assert.deepEqual(facts, certificateFactsOf(certificate));
  });

  it('leaves a claim certificate to X509Certificate, which reads its batch from the SAN', async () => {
    const { certificate } = await certificateNamed('CN=claim', { san: 'urn:fleet:claim:line-7' });
    assert.equal(plainCertificateFactsOf(certificate.raw), undefined);
    const facts = derCertificateFactsOf(certificate.raw);
    assert.equal(facts.claimBatch, 'line-7');
    assert.deepEqual(facts, certificateFactsOf(certificate));
  });

  it('leaves DER it cannot read whole to X509Certificate', async () => {
    const { certificate } = await certificateNamed('CN=trailing');
    assert.equal(plainCertificateFactsOf(Buffer.concat([certificate.raw, Buffer.from([0])])), undefined);
    assert.equal(plainCertificateFactsOf(certificate.raw.subarray(0, 100)), undefined);
    assert.equal(plainCertificateFactsOf(Buffer.alloc(0)), undefined);
  });
});

describe('peer certificate from the TLS session', () => {
  let server: tls.Server;
  let device: Made;
  let serverIdentity: Made;
  const accepted: TLSSocket[] = [];

  before(async () => {
    serverIdentity = await certificateNamed('CN=broker');
    const fleetCa = await certificateNamed('O=Fleet, CN=Session Test CA', { ca: true });
    device = await certificateNamed('C=DE, O=Fleet, CN=dev-session', { issuedBy: fleetCa });
    server = tls.createServer({ key: serverIdentity.keyPem, cert: serverIdentity.pem, ca: fleetCa.pem, requestCert: true, rejectUnauthorized: false, secureOptions: constants.SSL_OP_NO_TICKET });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });
  after(async () => {
    for (const socket of accepted) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  async function serverSideOf(options: tls.ConnectionOptions): Promise<TLSSocket> {
    const serverSide = once(server, 'secureConnection') as Promise<[TLSSocket]>;
    const client = tls.connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', ca: serverIdentity.pem, checkServerIdentity: () => undefined, ...options });
    client.on('error', () => undefined);
    const [socket] = await serverSide;
    accepted.push(socket, client);
    return socket;
  }

  it('clears OpenSSL’s error queue through the native addon, built by npm ci', () => {
    assert.equal(opensslErrorsUnavailable, undefined);
    assert.equal(typeof clearOpenSslErrors, 'function');
  });

  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`finds the certificate the device sent (${maxVersion})`, async () => {
      const socket = await serverSideOf({ key: device.keyPem, cert: device.pem, maxVersion });
      const der = sessionPeerCertificate(socket);
      assert.ok(der);
      assert.deepEqual(der, device.certificate.raw);
      assert.deepEqual(der, socket.getPeerCertificate(false).raw);
      const facts = peerFactsOf(socket);
      assert.equal(facts.chainError, undefined);
      assert.deepEqual(facts.certificate, certificateFactsOf(device.certificate));
    });
  }

  it('reads a certificate whose chain OpenSSL refused, and the connection can still answer', async () => {
    const der = Buffer.from(device.certificate.raw);
    der[der.length - 5] = der[der.length - 5]! ^ 0xff; // inside the signature
    const corrupted = `-----BEGIN CERTIFICATE-----\n${der.toString('base64')}\n-----END CERTIFICATE-----\n`;
    const socket = await serverSideOf({ key: device.keyPem, cert: corrupted });
    const client = accepted.at(-1)!;
    const errors: string[] = [];
    socket.on('error', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message));
    const facts = peerFactsOf(socket);
    assert.equal(facts.chainError, 'CERT_SIGNATURE_FAILURE');
    assert.equal(facts.certificate?.commonName, 'dev-session');
    // The refusal has to reach the device: a write after reading the peer must go out.
    socket.write('refused');
    const [answer] = (await once(client, 'data')) as [Buffer];
    assert.equal(answer.toString(), 'refused');
    assert.deepEqual(errors, []);
  });

  it('says there is none when the device sent none', async () => {
    const socket = await serverSideOf({});
    assert.equal(sessionPeerCertificate(socket), null);
    const facts = peerFactsOf(socket);
    assert.equal(facts.certificate, undefined);
    assert.ok(facts.chainError);
  });
});
