// Issuing-CA rotation end to end over real mutual TLS. The fleet's first issuing CA lives six
// days and the service clock starts five days behind real time, so stepping it across the
// rotation thresholds stays within the real validity every TLS peer checks: the next CA is
// prepared two days ago (real time) and activated about now.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { importSigner } from '../../provisioning/pki/hierarchy.js';
import { x509 } from '../../provisioning/pki/x509.js';
import { startFleet, type EnrolledDevice, type TestFleet } from '../support/fleet.js';
import { ecKeyWithCsr } from '../support/keys.js';
import { end } from '../support/mqtt.js';
import { eventually } from '../support/wait.js';

const DAY = 24 * 60 * 60 * 1000;

describe('issuing-CA rotation', { timeout: 90_000 }, () => {
  let fleet: TestFleet;
  let work: string;
  let offset = -5 * DAY;
  const clock = () => new Date(Date.now() + offset);
  const stepTo = (iso: string) => (offset = Date.parse(iso) + 1000 - Date.now());
  let beforeRotation: EnrolledDevice;
  let afterRotation: EnrolledDevice;

  before(async () => {
    fleet = await startFleet({ clock, issuingCaLifetimeMs: 6 * DAY, rotationIntervalMs: 60 * 60 * 1000 });
    work = mkdtempSync(join(tmpdir(), 'rotation-e2e-'));
  });
  after(async () => {
    await fleet.close();
    rmSync(work, { recursive: true, force: true });
  });

  interface Slot {
    ca: string;
    state: string;
  }
  const rotation = async () => (await fleet.api('/v1/ca/rotation')).json as { current: Slot; next?: Slot; old: Slot[]; thresholds: { prepareNextAt: string; activateNextAt: string } };
  const bundle = async () => (await fleet.api('/v1/ca/bundle', { anonymous: true })).body.toString();
  const caPem = async (id: string) => ((await fleet.api(`/v1/cas/${id}`)).json.certificate as string).trim();
  const file = (name: string, content: string | Buffer) => {
    writeFileSync(join(work, name), content);
    return join(work, name);
  };
  const caOf = async (device: EnrolledDevice) => (await fleet.api(`/v1/certificates/${device.serial}`)).json.ca as string;

  it('prepares the next CA at half-way and serves it in the bundle and the broker’s trust before it signs anything', async () => {
    const start = await rotation();
    assert.equal(start.current.ca, 'default');
    assert.equal(start.next, undefined);

    stepTo(start.thresholds.prepareNextAt);
    assert.deepEqual(await fleet.service.rotator.step(), [{ step: 'prepared', caId: 'issuing-2' }]);
    const prepared = await rotation();
    assert.deepEqual([prepared.current.ca, prepared.next?.ca, prepared.next?.state], ['default', 'issuing-2', 'prepared']);
    const next = await caPem('issuing-2');
    assert.ok((await bundle()).includes(next));
    assert.ok(readFileSync(join(fleet.dir, 'pki', 'ca-bundle.pem'), 'utf8').includes(next));
    const listed = (await fleet.api('/v1/cas')).json.cas.find((c: { id: string }) => c.id === 'issuing-2');
    assert.equal(listed.rotation.state, 'prepared');

    // The broker already trusts it: a certificate it signed (never enrolled) passes the TLS
    // chain check and is refused only by the registry.
    const signer = await importSigner(next, readFileSync(join(fleet.dir, 'pki', 'cas', 'issuing-2.key'), 'utf8'));
    const key = await ecKeyWithCsr();
    const spki = Buffer.from((await x509.PublicKey.create(key.keys.publicKey)).rawData);
    const probe = signer.issueDevice('probe-1', spki, { notBefore: new Date(clock().getTime() - 60_000), notAfter: new Date(Date.now() + DAY) }, 'https://localhost/crl');
    const refused = await fleet.tryConnect({ id: 'probe-1', keyPem: key.keyPem, certPem: probe.pem });
    assert.equal(refused.returnCode, 5);
    await end(refused.client);
    assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'probe-1' })).reason, 'unregistered_certificate');

    beforeRotation = await fleet.enroll('meter-old');
    assert.equal(await caOf(beforeRotation), 'default');
  });

  it('activates it at five sixths: the device of the old CA stays admitted, new enrollments get the new CA', async () => {
    const client = await fleet.connect(beforeRotation);
    await eventually(() => fleet.service.broker.isConnected('meter-old'));

    stepTo((await rotation()).thresholds.activateNextAt);
    assert.deepEqual(await fleet.service.rotator.step(), [{ step: 'activated', caId: 'issuing-2' }]);
    const active = await rotation();
    assert.deepEqual([active.current.ca, active.old.map((o) => o.ca)], ['issuing-2', ['default']]);
    assert.equal(fleet.service.broker.isConnected('meter-old'), true);
    await end(client);
    await end(await fleet.connect(beforeRotation)); // reconnects: the old CA is still trusted

    afterRotation = await fleet.enroll('meter-new');
    assert.equal(await caOf(afterRotation), 'issuing-2');
    const certificate = new x509.X509Certificate(afterRotation.certPem);
    assert.deepEqual(certificate.getExtension(x509.CRLDistributionPointsExtension)?.distributionPoints[0]?.distributionPoint?.fullName?.map((n) => n.uniformResourceIdentifier), [`${fleet.service.apiUrl}/v1/cas/issuing-2/crl`]);
    const verified = execFileSync('openssl', ['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', file('bundle.pem', await bundle()), file('new.pem', afterRotation.certPem)], { encoding: 'utf8' });
    assert.match(verified, /: OK/);
    const fresh = await fleet.connect(afterRotation);
    const echo = new Promise<string>((resolve) => fresh.once('message', (_t, p) => resolve(p.toString())));
    await fresh.subscribeAsync('devices/meter-new/#');
    await fresh.publishAsync('devices/meter-new/hello', 'under issuing-2');
    assert.equal(await echo, 'under issuing-2');
    await end(fresh);
  });

  it('moves the broker and API certificate to the new CA, with the chain a root-only client needs', async () => {
    const root = readFileSync(join(fleet.dir, 'pki', 'root.pem'), 'utf8');
    for (const port of [fleet.service.apiPort, fleet.service.mqttPort]) {
      const issuer = await new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: root }, () => {
          const cert = socket.getPeerCertificate();
          socket.destroy();
          resolve(String(cert.issuer.CN));
        });
        socket.once('error', reject);
      });
      assert.match(issuer, /Issuing CA 2 /);
    }
  });

  it('keeps each certificate’s CRL where its distribution point says: /v1/crl for the first CA, /v1/cas/{id}/crl after', async () => {
    assert.equal((await fleet.api(`/v1/certificates/${beforeRotation.serial}/revoke`, { body: { reason: 'superseded' } })).status, 200);
    const defaultCrl = file('default.crl', (await fleet.api('/v1/crl', { anonymous: true })).body);
    const text = execFileSync('sh', ['-c', `openssl crl -inform DER -in ${defaultCrl} -CAfile ${file('default.pem', await caPem('default'))} -noout -text 2>&1`], { encoding: 'utf8' });
    assert.match(text, /verify OK/);
    assert.match(text, new RegExp(beforeRotation.serial.toUpperCase()));

    const newCrl = (await fleet.api('/v1/cas/issuing-2/crl', { anonymous: true })).body;
    const pemCrl = file('issuing-2.crl.pem', `-----BEGIN X509 CRL-----\n${newCrl.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END X509 CRL-----\n`);
    const checked = execFileSync('openssl', ['verify', '-crl_check', '-CAfile', file('bundle2.pem', await bundle()), '-CRLfile', pemCrl, file('new2.pem', afterRotation.certPem)], { encoding: 'utf8' });
    assert.match(checked, /: OK/);
  });

  it('retires the old CA once nothing active depends on it: out of every bundle, its devices strangers', async () => {
    assert.deepEqual(await fleet.service.rotator.step(), [{ step: 'retired', caId: 'default', why: 'no_dependents' }]);
    const retired = (await fleet.api('/v1/cas/default')).json;
    assert.deepEqual([retired.status, retired.rotation.state], ['RETIRED', 'retired']);
    assert.ok(!(await bundle()).includes(await caPem('default')));
    // A client that no longer holds the old CA cannot send it along: the broker's trust has
    // no path to the certificate. (One that still does is refused by the registry: nothing
    // under a retired CA is active.)
    const refused = await fleet.tryConnect(beforeRotation, { ca: await bundle() });
    assert.equal(refused.returnCode, 5);
    await end(refused.client);
    assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'meter-old', reason: 'unknown_issuer' })).stage, 'connect');
    const chained = await fleet.tryConnect(beforeRotation);
    assert.equal(chained.returnCode, 5);
    await end(chained.client);
    assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'meter-old', reason: 'certificate_revoked' })).stage, 'connect');
    await end(await fleet.connect(afterRotation));

    const metrics = (await fleet.api('/metrics', { anonymous: true })).body.toString();
    for (const step of ['prepared', 'activated', 'retired']) assert.match(metrics, new RegExp(`fleet_ca_rotation_steps_total\\{step="${step}"\\} 1`));
    const audit = (await fleet.api('/v1/audit?actor=system:rotation')).json.entries.map((e: { action: string; subject: { id: string } }) => `${e.action} ${e.subject.id}`);
    assert.deepEqual(audit, ['ca.activated default', 'ca.created issuing-2', 'ca.prepared issuing-2', 'ca.superseded default', 'ca.activated issuing-2', 'ca.retired default']);
  });
});
