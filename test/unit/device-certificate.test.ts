// The device certificate written as DER: every field as RFC 5280 and the contract want it,
// read back by @peculiar/x509 and checked by openssl.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { checkCsr } from '../../provisioning/pki/csr.js';
import { randomSerial } from '../../provisioning/pki/serial.js';
import { x509 } from '../../provisioning/pki/x509.js';
import { operatorCa } from '../support/fixtures.js';
import { ecKeyWithCsr, rsaKeyWithCsr } from '../support/keys.js';

const work = mkdtempSync(join(tmpdir(), 'device-cert-'));
// The certificates are checked by openssl at a fixed time (-attime), so their CA has fixed
// dates too: one valid from the day it was made would not be at that time on a later day.
const CA_VALIDITY = { notBefore: new Date('2026-01-01'), notAfter: new Date('2036-01-01') };
after(() => rmSync(work, { recursive: true, force: true }));

describe('device certificate DER', () => {
  for (const [name, makeKey] of [
    ['an EC P-256 key', () => ecKeyWithCsr()],
    ['an RSA 2048 key', () => rsaKeyWithCsr(2048)],
  ] as const) {
    it(`carries every field for ${name}, and verifies`, async () => {
      const ca = await operatorCa('Device Cert Test CA', CA_VALIDITY);
      const key = await makeKey();
      const csr = checkCsr(key.csrPem);
      const id = 'meter_07:b.c-1';
      const notBefore = new Date('2026-11-23T10:00:00.750Z');
      const issued = ca.issueDevice(id, csr.spki, { notBefore, notAfter: new Date('2026-12-23T10:00:00Z') }, 'https://fleet.example/v1/crl');
      const cert = new x509.X509Certificate(issued.der);

      assert.equal(cert.subject, `CN=${id}`);
      assert.equal(cert.issuer, ca.certificate.subject);
      assert.equal(cert.serialNumber.toLowerCase(), issued.serial);
      assert.deepEqual([cert.notBefore.toISOString(), issued.notBefore.toISOString()], ['2026-11-23T10:00:00.000Z', '2026-11-23T10:00:00.000Z']);
      assert.equal(await cert.verify({ publicKey: ca.certificate, signatureOnly: true }), true);
      assert.deepEqual(Buffer.from(cert.publicKey.rawData), csr.spki);

      const basic = cert.getExtension(x509.BasicConstraintsExtension)!;
      assert.deepEqual([basic.ca, basic.critical], [false, true]);
      const usage = cert.getExtension(x509.KeyUsagesExtension)!;
      assert.deepEqual([usage.usages, usage.critical], [x509.KeyUsageFlags.digitalSignature, true]);
      assert.deepEqual([...cert.getExtension(x509.ExtendedKeyUsageExtension)!.usages], [x509.ExtendedKeyUsage.clientAuth]);
      assert.equal(cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId, Buffer.from(await cert.publicKey.getKeyIdentifier()).toString('hex'));
      assert.equal(cert.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId, ca.keyId);
      assert.deepEqual(cert.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON(), [{ type: 'url', value: `urn:fleet:device:${id}` }]);
      assert.match(Buffer.from(cert.getExtension(x509.CRLDistributionPointsExtension)!.value).toString('latin1'), /https:\/\/fleet\.example\/v1\/crl/);

      writeFileSync(join(work, 'ca.pem'), ca.pem);
      writeFileSync(join(work, 'device.pem'), issued.pem);
      const verified = execFileSync('openssl', ['verify', '-x509_strict', '-purpose', 'sslclient', '-attime', String(Date.parse('2026-12-01') / 1000), '-CAfile', join(work, 'ca.pem'), join(work, 'device.pem')], { encoding: 'utf8' });
      assert.match(verified, /: OK/);
    });
  }

  it('writes every length right from one issuer template: short and long ids, long CRL URLs, GeneralizedTime', async () => {
    const ca = await operatorCa('Device Cert Template CA', CA_VALIDITY);
    const key = checkCsr((await ecKeyWithCsr()).csrPem);
    // Ids and URLs whose lengths put the enclosing SEQUENCEs on either side of the DER
    // short/long length forms (127/128 and 255/256 bytes); validity across the 2050 switch.
    const cases = [
      { id: 'a', url: 'https://fleet.example/v1/crl', notAfter: '2026-12-23T10:00:00Z' },
      { id: 'x'.repeat(60), url: 'https://fleet.example/v1/crl', notAfter: '2026-12-23T10:00:00Z' },
      { id: 'y'.repeat(128), url: `https://fleet.example/${'p'.repeat(200)}/crl`, notAfter: '2026-12-23T10:00:00Z' },
      { id: 'meter:2050', url: `https://fleet.example/${'q'.repeat(90)}`, notAfter: '2050-01-02T00:00:00Z' },
      { id: 'a', url: 'https://fleet.example/v1/crl', notAfter: '2026-12-24T10:00:00Z' },
    ];
    const files: string[] = [];
    for (const [i, c] of cases.entries()) {
      const issued = ca.issueDevice(c.id, key.spki, { notBefore: new Date('2026-11-23T10:00:00Z'), notAfter: new Date(c.notAfter) }, c.url);
      const cert = new x509.X509Certificate(issued.der);
      assert.equal(cert.subject, `CN=${c.id}`);
      assert.equal(cert.notAfter.toISOString(), new Date(c.notAfter).toISOString());
      assert.equal(cert.serialNumber.toLowerCase(), issued.serial);
      assert.equal(await cert.verify({ publicKey: ca.certificate, signatureOnly: true }), true);
      assert.deepEqual(cert.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON(), [{ type: 'url', value: `urn:fleet:device:${c.id}` }]);
      const crl = cert.getExtension(x509.CRLDistributionPointsExtension)!;
      assert.equal(crl.distributionPoints[0]!.distributionPoint!.fullName![0]!.uniformResourceIdentifier, c.url);
      // Parsed into its ASN.1 structure and encoded again, it gives the same bytes: every length and tag was DER.
      assert.deepEqual(Buffer.from(AsnConvert.serialize(AsnConvert.parse(issued.der, Certificate))), issued.der);
      const file = join(work, `template-${i}.pem`);
      writeFileSync(file, issued.pem);
      files.push(file);
    }
    writeFileSync(join(work, 'template-ca.pem'), ca.pem);
    const verified = execFileSync('openssl', ['verify', '-x509_strict', '-purpose', 'sslclient', '-attime', String(Date.parse('2026-12-01') / 1000), '-CAfile', join(work, 'template-ca.pem'), ...files], { encoding: 'utf8' });
    assert.equal(verified.match(/: OK$/gm)?.length, cases.length);
  });
});

describe('serial numbers', () => {
  it('are 16 positive bytes, time first, then random', () => {
    const now = Date.parse('2026-11-23T10:00:00Z');
    const serials = Array.from({ length: 1000 }, (_, i) => randomSerial(now + i));
    for (const serial of serials) assert.match(serial, /^4[0-9a-f]{31}$/); // 0x4_: positive, no padding byte, 32 digits
    // Issued later sorts later: the registry's serial index grows at its end.
    assert.deepEqual([...serials].sort(), serials);
    assert.equal(parseInt(serials[0]!.slice(1, 12), 16), now);
    // The 80 random bits differ between serials of the same millisecond.
    const sameTime = new Set(Array.from({ length: 1000 }, () => randomSerial(now).slice(12)));
    assert.equal(sameTime.size, 1000);
  });
});
