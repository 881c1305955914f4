// Reloading without a restart, over real mutual TLS: the server certificate, the trust
// bundle and operators' CRLs change while devices stay connected; only the sessions that are
// no longer good are closed, with their reason. And a resumed TLS session is no way around a
// revocation.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { generateKeyPair, privateKeyToPem } from '../../provisioning/pki/keys.js';
import { defaultServerNames } from '../../provisioning/pki/hierarchy.js';
import { crlToPem } from '../../provisioning/crl.js';
import { x509 } from '../../provisioning/pki/x509.js';
import { deviceSignedBy, operatorCa } from '../support/fixtures.js';
import { addOperator, startFleet, type TestFleet } from '../support/fleet.js';
import { closed, end } from '../support/mqtt.js';
import { connectPacket } from '../support/raw-mqtt.js';
import { eventually } from '../support/wait.js';

function serverSerial(fleet: TestFleet): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: fleet.service.mqttPort, ca: fleet.ca }, () => {
      resolve(socket.getPeerCertificate().serialNumber.toLowerCase());
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

describe('hot reload', { timeout: 60_000 }, () => {
  let fleet: TestFleet;
  before(async () => {
    fleet = await startFleet();
  });
  after(() => fleet.close());

  it('takes a new server certificate and key from disk; connected devices stay', async () => {
    const device = await fleet.enroll('stay-1');
    const client = await fleet.connect(device);
    const before = await serverSerial(fleet);

    const ca = await fleet.issuingCa();
    const keys = await generateKeyPair();
    const issued = await ca.issueServer('localhost', defaultServerNames(), await x509.PublicKey.create(keys.publicKey), { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000) });
    // Key first, then the certificate: a reload between the two is refused as a mismatch and
    // the next change event brings the pair.
    await writeFile(join(fleet.dir, 'pki', 'server.key'), await privateKeyToPem(keys.privateKey), { mode: 0o600 });
    await writeFile(join(fleet.dir, 'pki', 'server.pem'), issued.pem);
    await eventually(async () => (await serverSerial(fleet)) === issued.serial, 5000, 'new connections see the new certificate');
    assert.notEqual(before, issued.serial);
    assert.equal(client.connected, true);
    assert.equal((await fleet.api('/healthz', { anonymous: true })).status, 200, 'the API serves the new certificate too');
    await end(client);
  });

  it('reloads the trust bundle from pki/trust.d: a removed CA’s sessions close, the others stay', async () => {
    const partner = await operatorCa('Partner Root');
    const guest = await deviceSignedBy(partner, 'guest-1');
    const local = await fleet.enroll('local-1');
    const localClient = await fleet.connect(local);

    // Trust the partner's CA, and let its one device in through a pinned break-glass grant.
    await mkdir(join(fleet.dir, 'pki', 'trust.d'), { recursive: true });
    await writeFile(join(fleet.dir, 'pki', 'trust.d', 'partner.pem'), partner.pem);
    await writeFile(join(fleet.dir, 'pki', 'trust.d', 'broken.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    await fleet.logs.waitFor('trust_file_ignored', { file: 'broken.pem' });
    await fleet.api('/v1/devices', { body: { id: 'guest-1' } });
    const bob = await addOperator(fleet.dir, 'bob');
    const grant = await fleet.api('/v1/break-glass', { body: { deviceId: 'guest-1', fingerprint: guest.fingerprint, waives: 'unregistered_certificate', reason: 'partner migration', durationSeconds: 600 } });
    await fleet.api(`/v1/break-glass/${grant.json.id}/approve`, { method: 'POST', token: bob });
    let guestClient!: Awaited<ReturnType<TestFleet['connect']>>;
    await eventually(async () => {
      const attempt = await fleet.tryConnect(guest);
      if (attempt.returnCode === 0) guestClient = attempt.client;
      else await end(attempt.client);
      return attempt.returnCode === 0;
    }, 5000, 'the partner device is let in');

    const gone = closed(guestClient);
    await rm(join(fleet.dir, 'pki', 'trust.d', 'partner.pem'));
    await gone;
    assert.equal((await fleet.logs.waitFor('session_terminated', { deviceId: 'guest-1' })).reason, 'unknown_issuer');
    assert.equal(localClient.connected, true, 'a device whose CA is still trusted is untouched');
    const refused = await fleet.tryConnect(guest);
    assert.notEqual(refused.returnCode, 0);
    await end(refused.client);
    await end(localClient);
    await rm(join(fleet.dir, 'pki', 'trust.d', 'broken.pem'));
  });

  it('imports an operator CA’s CRL from pki/crls: listed devices are thrown off and kept out', async () => {
    const theirs = await operatorCa('Acme Root');
    const code = (await fleet.api('/v1/cas/registration-codes', { method: 'POST' })).json.code;
    const proof = await deviceSignedBy(theirs, code);
    assert.equal((await fleet.api('/v1/cas/external', { body: { name: 'acme', certificate: theirs.pem, verificationCertificate: proof.certPem, unknownCertificates: 'register-active' } })).status, 201);
    const listed = await deviceSignedBy(theirs, 'acme-listed');
    const kept = await deviceSignedBy(theirs, 'acme-kept');
    const neverSeen = await deviceSignedBy(theirs, 'acme-never');
    const listedClient = await fleet.connect(listed);
    const keptClient = await fleet.connect(kept);

    const gone = closed(listedClient);
    const crl = theirs.signCrl(
      [
        { serial: listed.serial, revokedAt: new Date(), reason: 1 },
        { serial: neverSeen.serial, revokedAt: new Date(), reason: 1 },
      ],
      { thisUpdate: new Date(), nextUpdate: new Date(Date.now() + 86_400_000), crlNumber: 1n },
    );
    await writeFile(join(fleet.dir, 'pki', 'crls', 'acme.crl.pem'), crlToPem(crl));
    await gone;
    assert.equal((await fleet.logs.waitFor('session_terminated', { deviceId: 'acme-listed' })).reason, 'certificate_revoked');
    assert.equal(keptClient.connected, true);
    const view = await fleet.api('/v1/devices/acme-listed');
    assert.equal(view.json.certificates[0].status, 'REVOKED');
    assert.equal(view.json.certificates[0].revocationReason, 'crl');

    // A listed certificate the registry never knew is not registered just in time.
    const refused = await fleet.tryConnect(neverSeen);
    assert.equal(refused.returnCode, 5);
    await end(refused.client);
    assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'acme-never' })).reason, 'certificate_revoked');
    assert.equal((await fleet.api('/v1/devices/acme-never')).status, 404);
    await end(keptClient);
  });

  it('reloads everything on request, audited', async () => {
    const summary = await fleet.api('/v1/broker/reload', { method: 'POST' });
    assert.equal(summary.status, 200);
    assert.ok(summary.json.trust.trustedCas >= 2);
    assert.match(summary.json.server.serial, /^[0-9a-f]+$/);
    assert.equal(summary.json.crls.files, 1);
    const audit = (await fleet.api('/v1/audit?actor=operator:admin&limit=500')).json.entries;
    assert.ok(audit.some((e: { action: string }) => e.action === 'broker.reloaded'));
  });
});

/** A raw TLS connection as the device; resolves with the socket and whether the session was resumed. */
async function connectRaw(fleet: TestFleet, identity: { keyPem: string; certPem: string }, session?: Buffer) {
  const socket = tls.connect({ host: '127.0.0.1', port: fleet.service.mqttPort, ca: fleet.ca, key: identity.keyPem, cert: identity.certPem, session });
  const tickets: Buffer[] = [];
  socket.on('session', (ticket: Buffer) => tickets.push(ticket));
  await once(socket, 'secureConnect');
  return { socket, tickets, resumed: socket.isSessionReused() };
}

describe('TLS session resumption, with session tickets on', { timeout: 60_000 }, () => {
  let fleet: TestFleet;
  before(async () => {
    fleet = await startFleet({ sessionTickets: true });
  });
  after(() => fleet.close());
  const connectRaw_ = (identity: { keyPem: string; certPem: string }, session?: Buffer) => connectRaw(fleet, identity, session);

  it('runs admission again on a resumed session: a revoked device is refused', async () => {
    const device = await fleet.enroll('resume-1');
    const first = await connectRaw_(device);
    first.socket.write(connectPacket('resume-1'));
    const [connack] = (await once(first.socket, 'data')) as [Buffer];
    assert.equal(connack[3], 0, 'admitted');
    await eventually(() => first.tickets.length > 0, 2000, 'a session ticket');
    first.socket.destroy();

    await fleet.api(`/v1/certificates/${device.serial}/revoke`, { method: 'POST' });
    const second = await connectRaw_(device, first.tickets[0]);
    assert.equal(second.resumed, true, 'the TLS session was resumed');
    second.socket.write(connectPacket('resume-1'));
    const [refusal] = (await once(second.socket, 'data')) as [Buffer];
    assert.deepEqual([...refusal.subarray(0, 4)], [0x20, 0x02, 0x00, 0x05]);
    second.socket.destroy();
    assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'resume-1' })).reason, 'certificate_revoked');
  });
});

describe('TLS session resumption, by default', { timeout: 60_000 }, () => {
  let fleet: TestFleet;
  before(async () => {
    fleet = await startFleet();
  });
  after(() => fleet.close());

  it('issues no resumable session: a reconnect is a full handshake, admitted on its own merits', async () => {
    const device = await fleet.enroll('full-1');
    const first = await connectRaw(fleet, device);
    first.socket.write(connectPacket('full-1'));
    const [connack] = (await once(first.socket, 'data')) as [Buffer];
    assert.equal(connack[3], 0, 'admitted');
    // TLS 1.3 still hands the client (stateful) tickets; without a session cache on the
    // broker they resume nothing.
    await eventually(() => first.tickets.length > 0, 2000, 'a ticket offered');
    first.socket.destroy();
    const second = await connectRaw(fleet, device, first.tickets[0]);
    assert.equal(second.resumed, false, 'a full handshake, not a resumed session');
    assert.ok(second.socket.authorized, 'the client certificate was verified again');
    second.socket.write(connectPacket('full-1'));
    const [again] = (await once(second.socket, 'data')) as [Buffer];
    assert.deepEqual([...again.subarray(0, 4)], [0x20, 0x02, 0x00, 0x00]);
    second.socket.destroy();
  });
});
