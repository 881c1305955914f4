// The provisioning API (contract v1) over HTTPS: every endpoint, every coded refusal, and
// the certificates it mints checked by openssl.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startFleet, type TestFleet } from '../support/fleet.js';
import { ecKeyWithCsr, rsaKeyWithCsr } from '../support/keys.js';
import { x509 } from '../../provisioning/pki/x509.js';

describe('provisioning API', { timeout: 60_000 }, () => {
  let fleet: TestFleet;
  let work: string;
  before(async () => {
    fleet = await startFleet();
    work = mkdtempSync(join(tmpdir(), 'api-test-'));
  });
  after(async () => {
    await fleet.close();
    rmSync(work, { recursive: true, force: true });
  });

  const openssl = (...args: string[]) => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const file = (name: string, content: string | Buffer) => {
    const path = join(work, name);
    writeFileSync(path, content);
    return path;
  };

  describe('enrollment', () => {
    it('creates a device and mints a certificate whose identity comes from the registry, not the CSR', async () => {
      const created = await fleet.api('/v1/devices', { body: { id: 'meter-0001', attributes: { model: 'M1' } } });
      assert.equal(created.status, 201);
      assert.deepEqual(
        { id: created.json.id, status: created.json.status, attributes: created.json.attributes, connected: created.json.connected, certificates: created.json.certificates },
        { id: 'meter-0001', status: 'ACTIVE', attributes: { model: 'M1' }, connected: false, certificates: [] },
      );

      const key = await ecKeyWithCsr('CN=admin,O=Evil');
      const enrolled = await fleet.api('/v1/devices/meter-0001/certificates', { body: { csr: key.csrPem } });
      assert.equal(enrolled.status, 201);
      const { serial, fingerprint, certificate, chain, notBefore, notAfter } = enrolled.json;
      assert.match(serial, /^[0-9a-f]{32}$/);
      assert.match(fingerprint, /^[0-9a-f]{64}$/);
      assert.ok(Date.parse(notAfter) > Date.parse(notBefore));

      const cert = new x509.X509Certificate(certificate);
      assert.equal(cert.subject, 'CN=meter-0001');
      assert.equal(cert.serialNumber.toLowerCase(), serial);
      const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
      assert.deepEqual(san?.names.toJSON(), [{ type: 'url', value: 'urn:fleet:device:meter-0001' }]);
      const cdp = cert.getExtension(x509.CRLDistributionPointsExtension);
      assert.ok(cdp, 'has a CRL distribution point');

      // RFC 5280-strict, and a TLS client certificate, for openssl.
      const certPath = file('meter.pem', certificate);
      const chainPath = file('chain.pem', chain);
      assert.match(openssl('verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', join(fleet.dir, 'pki', 'ca-bundle.pem'), certPath), /: OK/);
      assert.match(openssl('verify', '-x509_strict', '-CAfile', chainPath, certPath), /: OK/, 'the returned chain is complete');

      const view = await fleet.api('/v1/devices/meter-0001');
      assert.equal(view.status, 200);
      assert.deepEqual(view.json.certificates.map((c: { serial: string; status: string }) => [c.serial, c.status]), [[serial, 'ACTIVE']]);
    });

    it('accepts RSA 2048 and P-384 keys', async () => {
      await fleet.api('/v1/devices', { body: { id: 'rsa-device' } });
      assert.equal((await fleet.api('/v1/devices/rsa-device/certificates', { body: { csr: (await rsaKeyWithCsr(2048)).csrPem } })).status, 201);
      await fleet.api('/v1/devices', { body: { id: 'p384-device' } });
      const p384 = await ecKeyWithCsr('x', { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' });
      assert.equal((await fleet.api('/v1/devices/p384-device/certificates', { body: { csr: p384.csrPem } })).status, 201);
    });

    it('refuses to certify one public key for two devices', async () => {
      const key = await ecKeyWithCsr();
      await fleet.api('/v1/devices', { body: { id: 'twin-a' } });
      await fleet.api('/v1/devices', { body: { id: 'twin-b' } });
      assert.equal((await fleet.api('/v1/devices/twin-a/certificates', { body: { csr: key.csrPem } })).status, 201);
      const second = await fleet.api('/v1/devices/twin-b/certificates', { body: { csr: key.csrPem } });
      assert.equal(second.status, 409);
      assert.equal(second.json.error.code, 'public_key_in_use');
    });
  });

  describe('coded refusals', () => {
    before(async () => {
      await fleet.api('/v1/devices', { body: { id: 'target' } });
    });

    const cases: { name: string; path: string; request: Parameters<TestFleet['api']>[1]; status: number; code: string }[] = [
      { name: 'no token', path: '/v1/devices/target', request: { anonymous: true }, status: 401, code: 'token_missing' },
      { name: 'a wrong token', path: '/v1/devices/target', request: { token: 'not-the-token' }, status: 401, code: 'token_invalid' },
      { name: 'a non-bearer authorization', path: '/v1/devices/target', request: { anonymous: true, headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } }, status: 401, code: 'token_invalid' },
      { name: 'an id with a slash', path: '/v1/devices', request: { body: { id: 'a/b' } }, status: 400, code: 'invalid_device_id' },
      { name: 'an id with a wildcard', path: '/v1/devices', request: { body: { id: 'dev+1' } }, status: 400, code: 'invalid_device_id' },
      { name: 'an empty id', path: '/v1/devices', request: { body: { id: '' } }, status: 400, code: 'invalid_device_id' },
      { name: 'an id of 129 characters', path: '/v1/devices', request: { body: { id: 'x'.repeat(129) } }, status: 400, code: 'invalid_device_id' },
      { name: 'a bad id in the path', path: '/v1/devices/bad%20id', request: {}, status: 400, code: 'invalid_device_id' },
      { name: 'an id that is not a string', path: '/v1/devices', request: { body: { id: 42 } }, status: 400, code: 'invalid_body' },
      { name: 'no id at all', path: '/v1/devices', request: { body: { attributes: {} } }, status: 400, code: 'invalid_body' },
      { name: 'an unknown property', path: '/v1/devices', request: { body: { id: 'ok-id', role: 'admin' } }, status: 400, code: 'invalid_body' },
      { name: 'attributes that are not an object', path: '/v1/devices', request: { body: { id: 'ok-id', attributes: 'x' } }, status: 400, code: 'invalid_body' },
      { name: 'malformed JSON', path: '/v1/devices', request: { raw: '{"id": ', headers: { 'content-type': 'application/json' } }, status: 400, code: 'malformed_json' },
      { name: 'prototype poisoning', path: '/v1/devices', request: { raw: '{"id":"p","__proto__":{"admin":true}}', headers: { 'content-type': 'application/json' } }, status: 400, code: 'malformed_json' },
      { name: 'a body that is not JSON', path: '/v1/devices', request: { raw: 'id=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, status: 415, code: 'unsupported_media_type' },
      { name: 'an oversized body', path: '/v1/devices', request: { body: { id: 'big', attributes: { blob: 'x'.repeat(70_000) } } }, status: 413, code: 'body_too_large' },
      { name: 'an existing id', path: '/v1/devices', request: { body: { id: 'target' } }, status: 409, code: 'device_exists' },
      { name: 'an unknown device', path: '/v1/devices/nobody', request: {}, status: 404, code: 'device_not_found' },
      { name: 'enrollment for an unknown device', path: '/v1/devices/nobody/certificates', request: { body: { csr: 'x' } }, status: 404, code: 'device_not_found' },
      { name: 'a CSR that is not PEM', path: '/v1/devices/target/certificates', request: { body: { csr: 'hello' } }, status: 400, code: 'csr_malformed' },
      { name: 'a missing CSR', path: '/v1/devices/target/certificates', request: { body: {} }, status: 400, code: 'invalid_body' },
      { name: 'an unknown serial', path: '/v1/certificates/0abc/revoke', request: { method: 'POST' }, status: 404, code: 'certificate_not_found' },
      { name: 'a serial that is not hex', path: '/v1/certificates/xyz/revoke', request: { method: 'POST' }, status: 400, code: 'invalid_serial' },
      { name: 'a revocation reason of the wrong type', path: '/v1/devices/target/revoke', request: { body: { reason: 7 } }, status: 400, code: 'invalid_body' },
      { name: 'an unknown endpoint', path: '/v2/devices', request: {}, status: 404, code: 'not_found' },
    ];
    for (const { name, path, request, status, code } of cases) {
      it(`answers ${name} with ${status} ${code}`, async () => {
        const result = await fleet.api(path, request);
        assert.equal(result.status, status);
        assert.equal(result.json?.error?.code, code);
        assert.equal(typeof result.json.error.message, 'string');
      });
    }

    it('refuses a weak RSA key and a tampered CSR with their codes', async () => {
      const weak = await fleet.api('/v1/devices/target/certificates', { body: { csr: (await rsaKeyWithCsr(1024)).csrPem } });
      assert.deepEqual([weak.status, weak.json.error.code], [400, 'csr_key_unsupported']);
      const pem = (await ecKeyWithCsr('original')).csrPem;
      const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
      der[der.indexOf(Buffer.from('original')) + 7]! ^= 1;
      const tampered = await fleet.api('/v1/devices/target/certificates', { body: { csr: `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n` } });
      assert.deepEqual([tampered.status, tampered.json.error.code], [400, 'csr_signature_invalid']);
    });

    it('loses nothing on a refusal: the device is unchanged and has no certificate', async () => {
      const view = await fleet.api('/v1/devices/target');
      assert.equal(view.json.status, 'ACTIVE');
      assert.deepEqual(view.json.certificates, []);
    });
  });

  describe('revocation and the CRL', () => {
    it('revokes one certificate, lists it in a CRL that openssl verifies, and keeps the device', async () => {
      const device = await fleet.enroll('crl-device');
      const other = await fleet.api('/v1/devices/crl-device/certificates', { body: { csr: (await ecKeyWithCsr()).csrPem } });
      const revoked = await fleet.api(`/v1/certificates/${device.serial.toUpperCase().replace(/(..)(?!$)/g, '$1:')}/revoke`, { body: { reason: 'keyCompromise' } });
      assert.equal(revoked.status, 200);
      assert.deepEqual([revoked.json.serial, revoked.json.status, revoked.json.revocationReason], [device.serial, 'REVOKED', 'keyCompromise']);

      const view = await fleet.api('/v1/devices/crl-device');
      assert.equal(view.json.status, 'ACTIVE');
      assert.deepEqual(
        Object.fromEntries(view.json.certificates.map((c: { serial: string; status: string }) => [c.serial, c.status])),
        { [device.serial]: 'REVOKED', [other.json.serial]: 'ACTIVE' },
      );

      const crl = await fleet.api('/v1/crl', { anonymous: true });
      assert.equal(crl.status, 200);
      assert.equal(crl.headers['content-type'], 'application/pkix-crl');
      const bundle = join(fleet.dir, 'pki', 'ca-bundle.pem');
      const crlDer = file('crl.der', crl.body);
      const text = execFileSync('openssl', ['crl', '-inform', 'DER', '-in', crlDer, '-CAfile', bundle, '-noout', '-text'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      assert.match(text, new RegExp(device.serial.toUpperCase()));
      assert.doesNotMatch(text, new RegExp(other.json.serial.toUpperCase()));
      assert.match(text, /Key Compromise/);
      assert.match(text, /Next Update/);
      // verify reports its verdict on stderr
      const verified = execFileSync('sh', ['-c', `openssl crl -inform DER -in ${crlDer} -CAfile ${bundle} -noout 2>&1`], { encoding: 'utf8' });
      assert.match(verified, /verify OK/);

      // The file copy is the same CRL, in PEM with the label OpenSSL reads.
      const certPath = file('revoked.pem', device.certPem);
      const crlPem = join(fleet.dir, 'pki', 'crl.pem');
      const check = execFileSync('sh', ['-c', `openssl verify -crl_check -CAfile ${bundle} -CRLfile ${crlPem} ${certPath} 2>&1 || true`], { encoding: 'utf8' });
      assert.match(check, /certificate revoked/);
    });

    it('revokes a device for good: no new certificate, 409 device_decommissioned', async () => {
      await fleet.enroll('lost-device');
      const revoked = await fleet.api('/v1/devices/lost-device/revoke', { method: 'POST' });
      assert.equal(revoked.status, 200);
      assert.equal(revoked.json.status, 'DECOMMISSIONED');
      assert.ok(revoked.json.certificates.every((c: { status: string }) => c.status === 'REVOKED'));
      const again = await fleet.api('/v1/devices/lost-device/certificates', { body: { csr: (await ecKeyWithCsr()).csrPem } });
      assert.deepEqual([again.status, again.json.error.code], [409, 'device_decommissioned']);
      // Revoking again is harmless and answers the same.
      const twice = await fleet.api('/v1/devices/lost-device/revoke', { body: { reason: 'lost' }, headers: { 'content-type': 'application/json' } });
      assert.equal(twice.status, 200);
      assert.equal(twice.json.status, 'DECOMMISSIONED');
    });
  });

  describe('public endpoints', () => {
    it('serves the CA bundle without a token', async () => {
      const bundle = await fleet.api('/v1/ca/bundle', { anonymous: true });
      assert.equal(bundle.status, 200);
      assert.equal(bundle.body.toString(), fleet.ca);
    });

    it('serves Prometheus metrics with every refusal reason', async () => {
      const metrics = await fleet.api('/metrics', { anonymous: true });
      assert.equal(metrics.status, 200);
      assert.match(metrics.body.toString(), /fleet_refusals_total\{reason="certificate_revoked",stage="connect"\} \d+/);
      assert.match(metrics.body.toString(), /fleet_connected_devices \d+/);
    });
  });
});
