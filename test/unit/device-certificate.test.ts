// The device certificate written as DER: every field as RFC 5280 and the contract want it,
// read back by @peculiar/x509 and checked by openssl.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkCsr } from '../../provisioning/pki/csr.js';
import { x509 } from '../../provisioning/pki/x509.js';
import { operatorCa } from '../support/fixtures.js';
import { ecKeyWithCsr, rsaKeyWithCsr } from '../support/keys.js';

const work = mkdtempSync(join(tmpdir(), 'device-cert-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('device certificate DER', () => {
  for (const [name, makeKey] of [
    ['an EC P-256 key', () => ecKeyWithCsr()],
    ['an RSA 2048 key', () => rsaKeyWithCsr(2048)],
  ] as const) {
    it(`carries every field for ${name}, and verifies`, async () => {
      const ca = await operatorCa('Device Cert Test CA');
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
});
