// Who gets in, over real mutual TLS with real mqtt.js clients: each refusal is a CONNACK
// code for the device and a reason code in the log event and in the metrics.
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startFleet, type TestFleet } from '../support/fleet.js';
import { expiredDevice, foreignCaDevice, notYetValidDevice, serverCertAsClient, unregisteredDevice } from '../support/fixtures.js';
import { end, type Identity } from '../support/mqtt.js';
import { eventually } from '../support/wait.js';

describe('admission over mutual TLS', { timeout: 60_000 }, () => {
  let fleet: TestFleet;
  before(async () => {
    fleet = await startFleet();
  });
  after(() => fleet.close());

  it('admits an enrolled device, which publishes and receives its own messages', async () => {
    const device = await fleet.enroll('good-1');
    const client = await fleet.connect(device);
    const received = new Promise<[string, Buffer]>((resolve) => client.once('message', (topic, payload) => resolve([topic, payload])));
    await client.subscribeAsync('devices/good-1/commands/#', { qos: 1 });
    await client.publishAsync('devices/good-1/commands/reboot', 'now', { qos: 1 });
    const [topic, payload] = await received;
    assert.equal(topic, 'devices/good-1/commands/reboot');
    assert.equal(payload.toString(), 'now');

    const view = await fleet.api('/v1/devices/good-1');
    assert.equal(view.json.connected, true);
    const admitted = await fleet.logs.waitFor('admitted', { clientId: 'good-1' });
    assert.equal(admitted.serial, device.serial);
    await end(client);
  });

  // Each case: the identity presented, the CONNACK code, and the reason the broker reports.
  const refusals: { name: string; reason: string; identity: () => Promise<Partial<Identity>>; clientId?: string }[] = [
    { name: 'a certificate from the real issuing CA that is not in the registry', reason: 'unregistered_certificate', identity: () => unregisteredDevice(fleet, 'ghost-1') },
    { name: 'a certificate from a foreign CA', reason: 'unknown_issuer', identity: () => foreignCaDevice('foreign-1') },
    { name: 'no client certificate at all', reason: 'no_client_certificate', identity: () => Promise.resolve({ id: 'nocert-1' }) },
    { name: 'an expired certificate', reason: 'certificate_expired', identity: () => expiredDevice(fleet, 'old-1') },
    { name: 'a certificate not valid yet', reason: 'certificate_not_yet_valid', identity: () => notYetValidDevice(fleet, 'early-1') },
    { name: 'a server certificate used as a client certificate', reason: 'wrong_key_usage', identity: () => serverCertAsClient(fleet, 'server-1') },
    { name: 'a spoofed client id', reason: 'client_id_mismatch', identity: () => fleet.enroll('honest-1'), clientId: 'victim-1' },
  ];

  for (const { name, reason, identity, clientId } of refusals) {
    it(`refuses ${name} with CONNACK 5 and reason ${reason}`, async () => {
      const presented = await identity();
      const before = await fleet.refusals(reason);
      const outcome = await fleet.tryConnect({ ...presented, id: clientId ?? presented.id });
      assert.equal(outcome.returnCode, 5);
      await end(outcome.client);
      const event = await fleet.logs.waitFor('refusal', { reason, clientId: clientId ?? presented.id });
      assert.equal(event.stage, 'connect');
      assert.ok(event.peer, 'the peer address is in the event');
      if (presented.certPem) assert.match(String(event.fingerprint), /^[0-9a-f]{64}$/);
      assert.equal(await fleet.refusals(reason), before + 1);
    });
  }

  it('refuses a device whose client id names another enrolled device, and keeps that device online', async () => {
    const victim = await fleet.enroll('victim-2');
    const attacker = await fleet.enroll('attacker-2');
    const victimClient = await fleet.connect(victim);
    const outcome = await fleet.tryConnect({ ...attacker, id: 'victim-2' });
    assert.equal(outcome.returnCode, 5);
    await end(outcome.client);
    // The session takeover Aedes would do for a duplicate client id never happened.
    assert.equal(victimClient.connected, true);
    assert.equal((await fleet.api('/v1/devices/victim-2')).json.connected, true);
    await end(victimClient);
  });

  it('speaks TLS 1.3 when the device can, 1.2 when it cannot, and nothing older', async () => {
    const device = await fleet.enroll('tls-versions');
    const handshake = (options: tls.ConnectionOptions) =>
      new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port: fleet.service.mqttPort, ca: fleet.ca, key: device.keyPem, cert: device.certPem, ...options }, () => {
          resolve(socket.getProtocol() ?? '');
          socket.destroy();
        });
        socket.once('error', reject);
      });
    assert.equal(await handshake({}), 'TLSv1.3');
    assert.equal(await handshake({ maxVersion: 'TLSv1.2' }), 'TLSv1.2');
    const before = await fleet.refusals('tls_handshake_failed');
    // SECLEVEL=0: this client would speak TLS 1.1; the broker must not.
    await assert.rejects(handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }));
    await eventually(async () => (await fleet.refusals('tls_handshake_failed')) === before + 1, 3000, 'refused at the TLS layer, and counted');
  });

  it('makes a refused device stop: one attempt, where a dropped socket would be retried', async () => {
    const ghost = await unregisteredDevice(fleet, 'ghost-retry');
    const outcome = await fleet.tryConnect(ghost, { reconnectPeriod: 100 });
    assert.equal(outcome.returnCode, 5);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    outcome.client.end(true);
    assert.equal(fleet.logs.refusals({ clientId: 'ghost-retry' }).length, 1);
  });
});
