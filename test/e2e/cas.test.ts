// The CA hierarchy over real mutual TLS: CAs created while the broker runs, blast radius,
// cascading revocation with devices connected, and operators' own CAs with just-in-time
// registration.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CaSigner } from '../../provisioning/pki/signer.js';
import { deviceSignedBy, operatorCa } from '../support/fixtures.js';
import { startFleet, type TestFleet } from '../support/fleet.js';
import { ecKeyWithCsr } from '../support/keys.js';
import { closed, end, type Identity } from '../support/mqtt.js';
import { eventually } from '../support/wait.js';

describe('CAs', { timeout: 90_000 }, () => {
  let fleet: TestFleet;
  let work: string;
  before(async () => {
    fleet = await startFleet();
    work = mkdtempSync(join(tmpdir(), 'cas-test-'));
  });
  after(async () => {
    await fleet.close();
    rmSync(work, { recursive: true, force: true });
  });

  async function enrollUnder(ca: string, id: string): Promise<Identity & { serial: string }> {
    assert.equal((await fleet.api('/v1/devices', { body: { id } })).status, 201);
    const key = await ecKeyWithCsr();
    const enrolled = await fleet.api(`/v1/devices/${id}/certificates`, { body: { csr: key.csrPem, ca } });
    assert.equal(enrolled.status, 201, enrolled.body.toString());
    assert.equal(enrolled.json.ca, ca);
    return { id, keyPem: key.keyPem, certPem: enrolled.json.certificate, serial: enrolled.json.serial };
  }

  describe('the hierarchy', () => {
    it('creates CAs under the root and under each other while the broker runs', async () => {
      const plant = await fleet.api('/v1/cas', { body: { name: 'plant-a' } });
      assert.equal(plant.status, 201);
      assert.deepEqual([plant.json.parent, plant.json.status, plant.json.external], ['root', 'ACTIVE', false]);
      const line = await fleet.api('/v1/cas', { body: { name: 'line-1', parent: 'plant-a' } });
      assert.equal(line.status, 201);
      // The first issuing CA has pathLen 0: it signs devices only.
      const refused = await fleet.api('/v1/cas', { body: { name: 'nested', parent: 'default' } });
      assert.deepEqual([refused.status, refused.json.error.code], [409, 'ca_cannot_issue']);
      const twice = await fleet.api('/v1/cas', { body: { name: 'plant-a' } });
      assert.deepEqual([twice.status, twice.json.error.code], [409, 'ca_exists']);
      const badName = await fleet.api('/v1/cas', { body: { name: 'no spaces' } });
      assert.deepEqual([badName.status, badName.json.error.code], [400, 'invalid_ca_id']);

      // Its key stays on disk for the owner only, and out of every answer.
      assert.equal(statSync(join(fleet.dir, 'pki', 'cas', 'plant-a.key')).mode & 0o777, 0o600);
      for (const answer of [plant, line, await fleet.api('/v1/cas'), await fleet.api('/v1/cas/plant-a')]) assert.doesNotMatch(answer.body.toString(), /PRIVATE KEY/);

      // A device under the new CA gets in without a restart, and its chain verifies.
      const device = await enrollUnder('line-1', 'meter-l1');
      const chainFile = join(work, 'chain.pem');
      writeFileSync(chainFile, (await fleet.api('/v1/ca/bundle', { anonymous: true })).body);
      writeFileSync(join(work, 'meter.pem'), device.certPem);
      assert.match(execFileSync('openssl', ['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', chainFile, join(work, 'meter.pem')], { encoding: 'utf8' }), /OK/);
      await end(await fleet.connect(device));
    });

    it('answers the blast radius of a CA, transitively', async () => {
      await enrollUnder('plant-a', 'meter-pa');
      const radius = await fleet.api('/v1/cas/plant-a/blast-radius');
      assert.equal(radius.status, 200);
      assert.deepEqual([...radius.json.cas].sort(), ['line-1', 'plant-a']);
      assert.deepEqual([...radius.json.devices.ids].sort(), ['meter-l1', 'meter-pa']);
      assert.equal(radius.json.certificates.total, 2);
      assert.equal((await fleet.api('/v1/cas/nope/blast-radius')).json.error.code, 'ca_not_found');
    });

    it('revokes a CA with everything under it in one acknowledged operation, closing every session', async () => {
      const devices = [await enrollUnder('line-1', 'meter-l2'), await enrollUnder('plant-a', 'meter-pa2')];
      const clients = await Promise.all(devices.map((d) => fleet.connect(d)));
      await eventually(() => devices.every((d) => fleet.service.broker.isConnected(d.id)));
      const gone = Promise.all(clients.map(closed));

      const revoked = await fleet.api('/v1/cas/plant-a/revoke', { body: { reason: 'cACompromise' } });
      assert.equal(revoked.status, 200);
      assert.equal(revoked.json.status, 'REVOKED');
      assert.deepEqual([...revoked.json.revoked.cas].sort(), ['line-1', 'plant-a']);
      assert.equal(revoked.json.revoked.certificates, 4);
      for (const d of devices) assert.equal(fleet.service.broker.isConnected(d.id), false);
      await gone;
      for (const d of devices) {
        const retry = await fleet.tryConnect(d);
        assert.equal(retry.returnCode, 5);
        await end(retry.client);
        assert.equal((await fleet.logs.waitFor('refusal', { clientId: d.id })).reason, 'certificate_revoked');
      }

      // The CA itself is on the root's CRL, which openssl verifies against the root.
      const plant = await fleet.api('/v1/cas/plant-a');
      const crl = await fleet.api('/v1/cas/root/crl', { anonymous: true });
      writeFileSync(join(work, 'root.crl'), crl.body);
      const text = execFileSync('sh', ['-c', `openssl crl -inform DER -in ${join(work, 'root.crl')} -CAfile ${join(fleet.dir, 'pki', 'root.pem')} -noout -text 2>&1`], { encoding: 'utf8' });
      assert.match(text, /verify OK/);
      assert.match(text, new RegExp(plant.json.serial.toUpperCase()));
      // Revoked CAs sign nothing more, and leave the CA bundle.
      const late = await fleet.api('/v1/devices', { body: { id: 'late-1' } });
      assert.equal(late.status, 201);
      const refused = await fleet.api('/v1/devices/late-1/certificates', { body: { csr: (await ecKeyWithCsr()).csrPem, ca: 'line-1' } });
      assert.deepEqual([refused.status, refused.json.error.code], [409, 'ca_revoked']);
      assert.ok(!(await fleet.api('/v1/ca/bundle', { anonymous: true })).body.toString().includes(plant.json.certificate.trim().split('\n')[1]));
      const root = await fleet.api('/v1/cas/root/revoke', { method: 'POST' });
      assert.deepEqual([root.status, root.json.error.code], [409, 'ca_is_root']);
    });
  });

  it('never writes a CA key into the log', () => {
    const keys = ['root.key', 'issuing.key', join('cas', 'plant-a.key'), join('cas', 'line-1.key')].map((f) => readFileSync(join(fleet.dir, 'pki', f), 'utf8'));
    const secrets = keys.flatMap((pem) => pem.split('\n').filter((line) => line.length > 0 && !line.startsWith('-----')));
    const log = fleet.logs.lines.map((line) => JSON.stringify(line)).join('\n');
    assert.ok(log.length > 0);
    for (const secret of secrets) assert.ok(!log.includes(secret), 'a line of a CA key is in the log');
  });

  describe('operators’ own CAs', () => {
    let theirs: CaSigner;
    before(async () => {
      theirs = await operatorCa('Acme Devices Root');
    });

    async function register(name: string, unknownCertificates?: string, signer = theirs) {
      const { json } = await fleet.api('/v1/cas/registration-codes', { method: 'POST' });
      const proof = await deviceSignedBy(signer, json.code);
      return fleet.api('/v1/cas/external', { body: { name, certificate: theirs.pem, verificationCertificate: proof.certPem, ...(unknownCertificates ? { unknownCertificates } : {}) } });
    }

    it('refuses registration without proof of possession', async () => {
      const stranger = await operatorCa('Not Acme');
      const wrongSigner = await register('acme-x', 'refuse', stranger);
      assert.deepEqual([wrongSigner.status, wrongSigner.json.error.code], [400, 'verification_certificate_invalid']);
      const wrongCode = await deviceSignedBy(theirs, 'not-a-code-we-issued');
      const made = await fleet.api('/v1/cas/external', { body: { name: 'acme-y', certificate: theirs.pem, verificationCertificate: wrongCode.certPem } });
      assert.deepEqual([made.status, made.json.error.code], [400, 'registration_code_invalid']);
      const notCa = await fleet.api('/v1/cas/external', { body: { name: 'acme-z', certificate: wrongCode.certPem, verificationCertificate: wrongCode.certPem } });
      assert.deepEqual([notCa.status, notCa.json.error.code], [400, 'ca_certificate_invalid']);
    });

    it('applies the policy for unknown certificates: refuse, register pending, register active — each audited', async () => {
      const registered = await register('acme', 'refuse');
      assert.equal(registered.status, 201, registered.body.toString());
      assert.deepEqual([registered.json.external, registered.json.unknownCertificates], [true, 'refuse']);

      const first = await deviceSignedBy(theirs, 'acme-0001');
      const refused = await fleet.tryConnect(first);
      assert.equal(refused.returnCode, 5);
      await end(refused.client);
      assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'acme-0001' })).reason, 'unregistered_certificate');
      assert.equal((await fleet.api(`/v1/audit?certificate=${first.serial}`)).json.entries[0].action, 'certificate.jit_refused');

      await fleet.api('/v1/cas/acme/unknown-certificates', { method: 'PUT', body: { unknownCertificates: 'register-pending' } });
      const second = await deviceSignedBy(theirs, 'acme-0002');
      const pending = await fleet.tryConnect(second);
      assert.equal(pending.returnCode, 5);
      await end(pending.client);
      assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'acme-0002' })).reason, 'certificate_inactive');
      const view = await fleet.api('/v1/devices/acme-0002');
      assert.equal(view.json.certificates[0].status, 'PENDING_ACTIVATION');
      assert.equal(view.json.attributes.registeredBy, 'just-in-time');
      // An operator activates it, and it is in.
      await fleet.api(`/v1/certificates/${second.serial}/activate`, { method: 'POST' });
      await end(await fleet.connect(second));

      await fleet.api('/v1/cas/acme/unknown-certificates', { method: 'PUT', body: { unknownCertificates: 'register-active' } });
      const third = await deviceSignedBy(theirs, 'acme-0003');
      const client = await fleet.connect(third);
      const echo = new Promise<string>((resolve) => client.once('message', (_t, p) => resolve(p.toString())));
      await client.subscribeAsync('devices/acme-0003/#');
      await client.publishAsync('devices/acme-0003/hello', 'jit');
      assert.equal(await echo, 'jit');
      await end(client);
      const audit = await fleet.api(`/v1/audit?certificate=${third.serial}`);
      assert.deepEqual([audit.json.entries[0].action, audit.json.entries[0].actor.startsWith('broker:')], ['certificate.jit_registered', true]);
      assert.match((await fleet.api('/metrics', { anonymous: true })).body.toString(), /fleet_jit_registrations_total\{outcome="ACTIVE"\} 1/);

      // Even so, their CA cannot mint a way in as a device this service enrolled.
      await fleet.enroll('ours-1');
      const impostor = await deviceSignedBy(theirs, 'ours-1');
      const outcome = await fleet.tryConnect(impostor);
      assert.equal(outcome.returnCode, 5);
      await end(outcome.client);
      assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'ours-1' })).reason, 'unregistered_certificate');
      const refusedJit = (await fleet.api(`/v1/audit?certificate=${impostor.serial}`)).json.entries[0];
      assert.deepEqual([refusedJit.action, refusedJit.reason], ['certificate.jit_refused', 'device_of_another_ca']);
    });
  });
});
