// Renewal end to end over real mutual TLS: POST /v1/renew with curl and the device's own
// certificate, $fleet/certificates/renew/json on its own MQTT session, the overlap and the
// INACTIVE rule (the new certificate seen, or the grace period over), lifetimes per CA policy,
// and the renewal window after expiry, stepped on the service's injected clock.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { RENEW_ACCEPTED, RENEW_REJECTED, RENEW_TOPIC } from '../../broker/fleet-topics/renew.js';
import { x509 } from '../../provisioning/pki/x509.js';
import { expiredButRegistered } from '../support/fixtures.js';
import { startFleet, type EnrolledDevice, type TestFleet } from '../support/fleet.js';
import { httpsRequest } from '../support/https.js';
import { ecKeyWithCsr } from '../support/keys.js';
import { closed, end, subackCodes, type Identity } from '../support/mqtt.js';
import { eventually } from '../support/wait.js';

const run = promisify(execFile);
const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

describe('renewal', { timeout: 90_000 }, () => {
  let fleet: TestFleet;
  let work: string;
  let offsetMs = 0;
  const clock = () => new Date(Date.now() + offsetMs);

  before(async () => {
    fleet = await startFleet({ clock });
    work = await mkdtemp(join(tmpdir(), 'renewal-test-'));
  });
  after(async () => {
    await fleet.close();
    await rm(work, { recursive: true, force: true });
  });

  const renewAs = (identity: Pick<Identity, 'certPem' | 'keyPem'>, csr: string) =>
    httpsRequest(`${fleet.service.apiUrl}/v1/renew`, fleet.ca, { body: { csr }, cert: identity.certPem, key: identity.keyPem });
  const code = (r: { status: number; json: { error?: { code?: string } } | undefined }) => [r.status, r.json?.error?.code];
  const statusOf = async (serial: string): Promise<string> => (await fleet.api(`/v1/certificates/${serial}`)).json.status as string;
  const setPolicy = async (policy: Record<string, unknown>) => assert.equal((await fleet.api('/v1/cas/default/policy', { method: 'PUT', body: policy })).status, 200);

  it('renews with curl over mutual TLS: the same device, overlapping, the old certificate ACTIVE until the new one connects', async () => {
    const device = await fleet.enroll('renew-http');
    const files = { cert: join(work, 'old.pem'), key: join(work, 'old.key'), body: join(work, 'renew.json') };
    await writeFile(files.cert, device.certPem);
    await writeFile(files.key, device.keyPem);
    const next = await ecKeyWithCsr('whatever-the-csr-says');
    await writeFile(files.body, JSON.stringify({ csr: next.csrPem }));
    const { stdout } = await run('curl', ['-sS', '--fail-with-body', '--cacert', join(fleet.dir, 'pki', 'ca-bundle.pem'), '--cert', files.cert, '--key', files.key, '-H', 'Content-Type: application/json', '--data-binary', `@${files.body}`, `${fleet.service.apiUrl}/v1/renew`]);
    const renewed = JSON.parse(stdout);
    assert.equal(renewed.renewedFrom, device.serial);
    const cert = new x509.X509Certificate(renewed.certificate);
    const old = new x509.X509Certificate(device.certPem);
    assert.equal(cert.subject, 'CN=renew-http', 'identity from the registry, not the CSR');
    assert.ok(cert.notBefore < old.notAfter && cert.notAfter >= old.notAfter, 'the validities overlap');
    await writeFile(join(work, 'new.pem'), renewed.certificate);
    await run('openssl', ['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', join(fleet.dir, 'pki', 'ca-bundle.pem'), join(work, 'new.pem')]);
    assert.deepEqual([await statusOf(device.serial), await statusOf(renewed.serial)], ['ACTIVE', 'ACTIVE']);

    // Until the new certificate is seen, the old one still renews (a lost answer is asked again).
    const again = await renewAs(device, (await ecKeyWithCsr()).csrPem);
    assert.equal(again.status, 201);

    const client = await fleet.connect({ id: 'renew-http', certPem: renewed.certificate, keyPem: next.keyPem });
    await eventually(async () => (await statusOf(device.serial)) === 'INACTIVE', 5000, 'the old certificate retired');
    await end(client);
    assert.deepEqual(code(await renewAs(device, (await ecKeyWithCsr()).csrPem)), [401, 'client_certificate_inactive']);
    const audit = await fleet.api(`/v1/audit?certificate=${renewed.serial}`);
    assert.deepEqual(audit.json.entries.map((e: { actor: string; action: string }) => [e.actor, e.action]), [['device:renew-http', 'certificate.renewed']]);
  });

  it('refuses a revoked certificate, a disabled device and a bad CSR, each with its code', async () => {
    const revoked = await fleet.enroll('renew-revoked');
    await fleet.api(`/v1/certificates/${revoked.serial}/revoke`, { method: 'POST' });
    assert.deepEqual(code(await renewAs(revoked, (await ecKeyWithCsr()).csrPem)), [401, 'client_certificate_revoked']);
    const disabled = await fleet.enroll('renew-disabled');
    await fleet.api('/v1/devices/renew-disabled/disable', { method: 'POST' });
    assert.deepEqual(code(await renewAs(disabled, (await ecKeyWithCsr()).csrPem)), [409, 'device_disabled']);
    const good = await fleet.enroll('renew-bad-csr');
    assert.deepEqual(code(await renewAs(good, 'not a CSR')), [400, 'csr_malformed']);
    assert.deepEqual(code(await httpsRequest(`${fleet.service.apiUrl}/v1/renew`, fleet.ca, { body: {}, cert: good.certPem, key: good.keyPem })), [400, 'invalid_body']);
    // An operator has no certificate of its own to renew.
    assert.deepEqual(code(await fleet.api('/v1/renew', { body: { csr: (await ecKeyWithCsr()).csrPem } })), [403, 'forbidden']);
    assert.equal((await fleet.api('/v1/devices/renew-bad-csr')).json.certificates.length, 1, 'nothing issued');
  });

  it('follows the CA policy: certificates of hours, and a new key when the policy asks for one', async () => {
    const device = await fleet.enroll('renew-policy');
    await setPolicy({ certificateLifetimeSeconds: 6 * 3600, requireNewKey: true });
    try {
      assert.deepEqual((await fleet.api('/v1/cas/default/policy')).json, { ca: 'default', certificateLifetimeSeconds: 21600, renewalWindowSeconds: 0, renewalGraceSeconds: 86400, requireNewKey: true });
      // The device's own key, in a CSR of its own.
      const keys = await webcryptoKeysOf(device);
      const reused = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=x', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
      assert.deepEqual(code(await renewAs(device, reused.toString('pem'))), [400, 'public_key_reused']);
      const renewed = await renewAs(device, (await ecKeyWithCsr()).csrPem);
      assert.equal(renewed.status, 201);
      const lifetime = Date.parse(renewed.json.notAfter) - Date.parse(renewed.json.notBefore);
      assert.ok(lifetime > 6 * HOUR && lifetime <= 6 * HOUR + 60_000, `lifetime ${lifetime} ms (6 h and the one-minute backdate)`);
      assert.deepEqual(code(await fleet.api('/v1/cas/default/policy', { method: 'PUT', body: { certificateLifetimeSeconds: 60 } })), [400, 'invalid_ca_policy']);
    } finally {
      await setPolicy({});
    }
  });

  it('renews an expired certificate only inside the CA’s renewal window, on the service’s clock', async () => {
    const device = await fleet.enroll('renew-sleeper');
    const notAfter = new x509.X509Certificate(device.certPem).notAfter.getTime();
    offsetMs = notAfter + DAY - Date.now();
    try {
      assert.deepEqual(code(await renewAs(device, (await ecKeyWithCsr()).csrPem)), [401, 'client_certificate_expired'], 'no window by default');
      await setPolicy({ renewalWindowSeconds: 2 * 86400 });
      const renewed = await renewAs(device, (await ecKeyWithCsr()).csrPem);
      assert.equal(renewed.status, 201);
      assert.equal(renewed.json.renewedFrom, device.serial);
      // Inside the window the expired certificate renews itself and does nothing else.
      assert.deepEqual(code(await httpsRequest(`${fleet.service.apiUrl}/v1/devices/renew-sleeper`, fleet.ca, { cert: device.certPem, key: device.keyPem })), [401, 'client_certificate_expired']);
      offsetMs = notAfter + 3 * DAY - Date.now();
      assert.deepEqual(code(await renewAs(device, (await ecKeyWithCsr()).csrPem)), [401, 'client_certificate_expired'], 'past the window');
    } finally {
      offsetMs = 0;
      await setPolicy({});
    }
  });

  it('renews a certificate the TLS layer itself finds expired, inside the window only', async () => {
    await fleet.api('/v1/devices', { body: { id: 'renew-offline' } });
    const stale = await expiredButRegistered(fleet, 'renew-offline'); // expired a day ago, by the real clock
    assert.deepEqual(code(await renewAs(stale, (await ecKeyWithCsr()).csrPem)), [401, 'client_certificate_expired']);
    await setPolicy({ renewalWindowSeconds: 7 * 86400 });
    try {
      const renewed = await renewAs(stale, (await ecKeyWithCsr()).csrPem);
      assert.equal(renewed.status, 201);
    } finally {
      await setPolicy({});
    }
  });

  describe('over MQTT with an expired certificate', () => {
    const renewOver = async (client: MqttClient, csr: string): Promise<{ topic: string; body: { serial?: string; certificate?: string; error?: { code: string } } }> => {
      const answer = new Promise<{ topic: string; body: { serial?: string; certificate?: string } }>((resolve) => client.once('message', (topic, payload) => resolve({ topic, body: JSON.parse(payload.toString()) as { serial?: string } })));
      await client.publishAsync(RENEW_TOPIC, JSON.stringify({ csr }), { qos: 1 });
      return answer;
    };

    it('admits a certificate expired inside the CA’s renewal window to a session that may only renew', async () => {
      await fleet.api('/v1/devices', { body: { id: 'renew-mqtt-stale' } });
      const stale = await expiredButRegistered(fleet, 'renew-mqtt-stale'); // expired a day ago, by the TLS layer's clock too
      const before = await fleet.tryConnect(stale);
      assert.equal(before.returnCode, 5, 'no window by default');
      await end(before.client);
      assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'renew-mqtt-stale' })).reason, 'certificate_expired');

      await setPolicy({ renewalWindowSeconds: 7 * 86400 });
      try {
        const client = await fleet.connect(stale);
        assert.deepEqual(await subackCodes(client, { 'devices/renew-mqtt-stale/#': { qos: 0 }, [RENEW_ACCEPTED]: { qos: 1 }, [RENEW_REJECTED]: { qos: 1 } }), [0x80, 1, 1]);
        assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'renew-mqtt-stale', topic: 'devices/renew-mqtt-stale/#' })).reason, 'topic_denied');
        const next = await ecKeyWithCsr();
        const answer = await renewOver(client, next.csrPem);
        assert.equal(answer.topic, RENEW_ACCEPTED, JSON.stringify(answer.body));
        // Nothing but renewal: publishing to its own topic ends the session.
        const gone = closed(client);
        client.publish('devices/renew-mqtt-stale/telemetry', 'still here');
        await gone;
        assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'renew-mqtt-stale', topic: 'devices/renew-mqtt-stale/telemetry' })).reason, 'topic_denied');

        const renewed = await fleet.connect({ id: 'renew-mqtt-stale', certPem: answer.body.certificate!, keyPem: next.keyPem });
        assert.deepEqual(await subackCodes(renewed, { 'devices/renew-mqtt-stale/#': { qos: 0 } }), [0]);
        await end(renewed);
      } finally {
        await setPolicy({});
      }
    });

    it('refuses a session with a will, and one whose certificate is outside the window, as expired', async () => {
      const device = await fleet.enroll('renew-mqtt-late');
      const notAfter = new x509.X509Certificate(device.certPem).notAfter.getTime();
      await setPolicy({ renewalWindowSeconds: 2 * 86400 });
      try {
        offsetMs = notAfter + DAY - Date.now();
        const willing = await fleet.tryConnect(device, { will: { topic: 'devices/renew-mqtt-late/gone', payload: Buffer.from('x'), qos: 0, retain: false } });
        assert.equal(willing.returnCode, 5);
        await end(willing.client);
        assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'renew-mqtt-late' })).reason, 'topic_denied');
        const inside = await fleet.connect(device);
        await end(inside);

        offsetMs = notAfter + 3 * DAY - Date.now();
        const late = await fleet.tryConnect(device);
        assert.equal(late.returnCode, 5);
        await end(late.client);
        await eventually(() => fleet.logs.refusals({ clientId: 'renew-mqtt-late', reason: 'certificate_expired' }).length === 1, 5000, 'refused as expired');
      } finally {
        offsetMs = 0;
        await setPolicy({});
      }
    });
  });

  describe('over MQTT', () => {
    let a: EnrolledDevice;
    let b: EnrolledDevice;
    let clientA: MqttClient;
    let clientB: MqttClient;
    type Reply = { topic: string; body: { certificate?: string; renewedFrom?: string; error?: { code: string } } };
    const inbox = new Map<MqttClient, Reply[]>();
    const listen = (client: MqttClient) => {
      const received: Reply[] = [];
      client.on('message', (topic, payload) => received.push({ topic, body: JSON.parse(payload.toString()) as Reply['body'] }));
      inbox.set(client, received);
    };
    before(async () => {
      [a, b] = await Promise.all([fleet.enroll('renew-mqtt-a'), fleet.enroll('renew-mqtt-b')]);
      [clientA, clientB] = await Promise.all([fleet.connect(a), fleet.connect(b)]);
      for (const client of [clientA, clientB]) {
        listen(client);
        assert.deepEqual(await subackCodes(client, { [RENEW_ACCEPTED]: { qos: 1 }, [RENEW_REJECTED]: { qos: 1 } }), [1, 1]);
      }
    });
    after(() => Promise.all([end(clientA), end(clientB)]));

    it('answers on the session that asked, and the new certificate takes over once it connects', async () => {
      const next = await ecKeyWithCsr();
      clientA.publish(RENEW_TOPIC, JSON.stringify({ csr: next.csrPem }), { qos: 1 });
      await eventually(() => inbox.get(clientA)!.length === 1, 5000, 'the answer');
      const [answer] = inbox.get(clientA)!;
      assert.equal(answer!.topic, RENEW_ACCEPTED);
      assert.equal(new x509.X509Certificate(answer!.body.certificate!).subject, 'CN=renew-mqtt-a');
      assert.equal(answer!.body.renewedFrom, a.serial);
      assert.deepEqual(inbox.get(clientB), [], 'nobody else hears it');

      const renewed = await fleet.connect({ id: 'renew-mqtt-a', certPem: answer!.body.certificate!, keyPem: next.keyPem });
      await eventually(async () => (await statusOf(a.serial)) === 'INACTIVE', 5000, 'the old certificate retired');
      await end(renewed);
    });

    it('rejects a bad CSR on the same session, with its code', async () => {
      clientB.publish(RENEW_TOPIC, JSON.stringify({ csr: 'garbage' }), { qos: 1 });
      await eventually(() => inbox.get(clientB)!.length === 1, 5000, 'the answer');
      assert.deepEqual(inbox.get(clientB)!.map((m) => [m.topic, m.body.error?.code]), [[RENEW_REJECTED, 'csr_malformed']]);
      assert.equal(clientB.connected, true);
    });
  });
});

describe('renewal grace period', { timeout: 60_000 }, () => {
  // The sweep runs every few milliseconds; the grace period passes by stepping the clock.
  let offsetMs = 0;
  let fleet: TestFleet;
  before(async () => {
    fleet = await startFleet({ clock: () => new Date(Date.now() + offsetMs), renewalSweepIntervalMs: 20 });
    assert.equal((await fleet.api('/v1/cas/default/policy', { method: 'PUT', body: { renewalGraceSeconds: 600 } })).status, 200);
  });
  after(() => fleet.close());

  const statusOf = async (serial: string): Promise<string> => (await fleet.api(`/v1/certificates/${serial}`)).json.status as string;
  /** Resolves once a sweep has run on the service's clock at `at` or later. */
  const swept = (at: number) => eventually(() => fleet.logs.events('renewal_sweep').some((e) => Date.parse(e.at as string) >= at), 5000, 'a sweep');

  it('retires the old certificate once the grace period is over, though the new one was never seen', async () => {
    const device = await fleet.enroll('grace-unseen');
    const renewed = await httpsRequest(`${fleet.service.apiUrl}/v1/renew`, fleet.ca, { body: { csr: (await ecKeyWithCsr()).csrPem }, cert: device.certPem, key: device.keyPem });
    assert.equal(renewed.status, 201);
    const renewedAt = Date.now() + offsetMs;

    offsetMs += 300_000; // halfway through the grace period
    await swept(renewedAt + 300_000);
    assert.deepEqual([await statusOf(device.serial), await statusOf(renewed.json.serial)], ['ACTIVE', 'ACTIVE']);
    await end(await fleet.connect(device));

    offsetMs += 301_000;
    await swept(renewedAt + 601_000);
    assert.deepEqual([await statusOf(device.serial), await statusOf(renewed.json.serial)], ['INACTIVE', 'ACTIVE']);
    const refused = await fleet.tryConnect(device);
    assert.equal(refused.returnCode, 5);
    await end(refused.client);
    assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'grace-unseen' })).reason, 'certificate_inactive');
    const audit = await fleet.api(`/v1/audit?certificate=${device.serial}`);
    assert.ok(audit.json.entries.some((e: { actor: string; action: string }) => e.actor === 'system:renewal' && e.action === 'certificate.deactivated'), JSON.stringify(audit.json.entries));
  });
});

/** The WebCrypto key pair behind a test device's PEM key, to sign a CSR with the same key. */
async function webcryptoKeysOf(device: Identity) {
  const { webcrypto, createPrivateKey, createPublicKey } = await import('node:crypto');
  const privateKey = createPrivateKey(device.keyPem);
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' };
  return {
    privateKey: await webcrypto.subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), algorithm, false, ['sign']),
    publicKey: await webcrypto.subtle.importKey('spki', createPublicKey(privateKey).export({ type: 'spki', format: 'der' }), algorithm, true, ['verify']),
  };
}
