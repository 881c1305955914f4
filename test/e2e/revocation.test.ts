// Revocation end to end: acknowledged once durable and published, the live session closed
// by then, no way back in, and the same after a restart or a kill -9.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { enrollDevice, startFleet, type TestFleet } from '../support/fleet.js';
import { httpsRequest } from '../support/https.js';
import { closed, end, mqttOptions, tryConnect } from '../support/mqtt.js';
import { spawnServe } from '../support/process.js';
import { postgresSchema } from '../support/stores.js';
import { eventually } from '../support/wait.js';

describe('revocation', { timeout: 90_000 }, () => {
  let fleet: TestFleet;
  before(async () => {
    fleet = await startFleet();
  });
  after(() => fleet.close());

  it('closes the live session before acknowledging, and keeps the device out', async () => {
    const device = await fleet.enroll('lost-1');
    const client = await fleet.connect(device);
    await eventually(() => fleet.service.broker.isConnected('lost-1'));
    const gone = closed(client);

    const revoked = await fleet.api('/v1/devices/lost-1/revoke', { body: { reason: 'stolen' } });
    assert.equal(revoked.status, 200);
    // In one process the acknowledgement comes after the broker has acted on the event.
    assert.equal(fleet.service.broker.isConnected('lost-1'), false);
    assert.equal(revoked.json.connected, false);
    await gone;

    const terminated = await fleet.logs.waitFor('session_terminated', { deviceId: 'lost-1' });
    assert.equal(terminated.reason, 'certificate_revoked');
    assert.equal(terminated.serial, device.serial);
    assert.equal(typeof terminated.latencyMs, 'number');

    const before = await fleet.refusals('certificate_revoked');
    const retry = await fleet.tryConnect(device);
    assert.equal(retry.returnCode, 5);
    await end(retry.client);
    assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'lost-1', reason: 'certificate_revoked' })).serial, device.serial);
    assert.equal(await fleet.refusals('certificate_revoked'), before + 1);
  });

  it('lets no connection that races the revocation survive it', async () => {
    const device = await fleet.enroll('racer-1');
    const admitted: MqttClient[] = [];
    let revokedAt = 0;
    const attempts = (async () => {
      // Keep connecting, one attempt after another, until well after the acknowledgement.
      for (let i = 0; revokedAt === 0 || Date.now() - revokedAt < 300; i++) {
        const outcome = await tryConnect(mqttOptions(fleet.service.mqttPort, fleet.ca, device));
        if (outcome.returnCode === 0) admitted.push(outcome.client);
        else outcome.client.end(true);
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 150));
    const revoked = await fleet.api('/v1/devices/racer-1/revoke', { method: 'POST' });
    assert.equal(revoked.status, 200);
    revokedAt = Date.now();
    await attempts;
    assert.ok(admitted.length > 0, 'some attempts were admitted before the revocation');
    await eventually(() => admitted.every((c) => !c.connected), 2000, 'every admitted session closed');
    assert.equal(fleet.service.broker.isConnected('racer-1'), false);
    for (const client of admitted) client.end(true);
  });
});

for (const backend of ['SQLite', 'PostgreSQL'] as const) {
  describe(`revocation across restarts, registry on ${backend}`, { timeout: 90_000 }, () => {
    let dir: string;
    let database: { url: string; drop(): Promise<void> } | undefined;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'fleet-restart-'));
      if (backend === 'PostgreSQL') database = await postgresSchema();
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
      await database?.drop();
    });

    for (const [how, signal] of [
      ['a clean restart', 'SIGTERM'],
      ['kill -9 right after the acknowledgement', 'SIGKILL'],
    ] as const) {
      it(`keeps a revoked certificate revoked after ${how}`, async () => {
        const args = database ? ['--database', database.url] : [];
        let serve = await spawnServe(dir, { args });
        const ca = await readFile(join(dir, 'pki', 'ca-bundle.pem'), 'utf8');
        const token = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
        const id = `restart-${signal}`;
        const device = await enrollDevice(serve.apiUrl, ca, token, id);
        const keeper = await enrollDevice(serve.apiUrl, ca, token, `${id}-keeper`);

        const revoked = await httpsRequest(`${serve.apiUrl}/v1/certificates/${device.serial}/revoke`, ca, { token, body: { reason: 'keyCompromise' } });
        assert.equal(revoked.status, 200);
        const how = await serve.stop(signal);
        assert.equal(how, signal === 'SIGKILL' ? 'SIGKILL' : 0);

        serve = await spawnServe(dir, { args });
        try {
          assert.equal(serve.logs.find((e) => e.event === 'listening')?.registry, backend === 'SQLite' ? 'sqlite' : 'postgres');
          const outcome = await tryConnect(mqttOptions(serve.mqttPort, ca, device));
          assert.equal(outcome.returnCode, 5);
          outcome.client.end(true);
          await eventually(() => serve.logs.some((e) => e.event === 'refusal' && e.clientId === id && e.reason === 'certificate_revoked'), 5000, 'refusal logged');

          const view = await httpsRequest(`${serve.apiUrl}/v1/devices/${id}`, ca, { token });
          assert.equal(view.json.certificates[0].status, 'REVOKED');
          const crl = await httpsRequest(`${serve.apiUrl}/v1/crl`, ca);
          assert.ok(crl.body.includes(Buffer.from(device.serial, 'hex')), 'the rebuilt CRL lists the serial');

          // The other device was not affected.
          const ok = await tryConnect(mqttOptions(serve.mqttPort, ca, keeper));
          assert.equal(ok.returnCode, 0);
          await end(ok.client);
        } finally {
          await serve.stop();
        }
      });
    }
  });
}
