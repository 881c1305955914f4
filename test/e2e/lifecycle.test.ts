// Certificate and device lifecycle through the API, with the broker enforcing every status
// over real mutual TLS.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFleet, type TestFleet } from '../support/fleet.js';
import { ecKeyWithCsr } from '../support/keys.js';
import { closed, end } from '../support/mqtt.js';
import { eventually } from '../support/wait.js';

describe('lifecycle', { timeout: 60_000 }, () => {
  let fleet: TestFleet;
  before(async () => {
    fleet = await startFleet();
  });
  after(() => fleet.close());

  it('deactivates a certificate: session closed, refused while inactive, back after activation, never on the CRL', async () => {
    const device = await fleet.enroll('switch-1');
    const client = await fleet.connect(device);
    await eventually(() => fleet.service.broker.isConnected('switch-1'));
    const gone = closed(client);
    const off = await fleet.api(`/v1/certificates/${device.serial}/deactivate`, { body: { reason: 'maintenance' } });
    assert.deepEqual([off.status, off.json.status], [200, 'INACTIVE']);
    await gone;
    assert.equal((await fleet.logs.waitFor('session_terminated', { deviceId: 'switch-1' })).reason, 'certificate_inactive');

    const refused = await fleet.tryConnect(device);
    assert.equal(refused.returnCode, 5);
    await end(refused.client);
    assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'switch-1' })).reason, 'certificate_inactive');
    assert.ok(!(await fleet.api('/v1/crl', { anonymous: true })).body.includes(Buffer.from(device.serial, 'hex')));

    const on = await fleet.api(`/v1/certificates/${device.serial}/activate`, { method: 'POST' });
    assert.deepEqual([on.status, on.json.status], [200, 'ACTIVE']);
    await end(await fleet.connect(device));
  });

  it('keeps REVOKED final: activate and deactivate answer 409 certificate_revoked', async () => {
    const device = await fleet.enroll('final-1');
    await fleet.api(`/v1/certificates/${device.serial}/revoke`, { method: 'POST' });
    for (const action of ['activate', 'deactivate']) {
      const result = await fleet.api(`/v1/certificates/${device.serial}/${action}`, { method: 'POST' });
      assert.deepEqual([result.status, result.json.error.code], [409, 'certificate_revoked']);
    }
  });

  it('disables a device: its sessions closed and none admitted, reversibly; a decommissioned device stays out', async () => {
    const device = await fleet.enroll('pump-1');
    const client = await fleet.connect(device);
    await eventually(() => fleet.service.broker.isConnected('pump-1'));
    const gone = closed(client);
    const disabled = await fleet.api('/v1/devices/pump-1/disable', { body: { reason: 'leak' } });
    assert.deepEqual([disabled.status, disabled.json.status], [200, 'DISABLED']);
    await gone;
    assert.equal((await fleet.logs.waitFor('session_terminated', { deviceId: 'pump-1' })).reason, 'device_disabled');
    const refused = await fleet.tryConnect(device);
    assert.equal(refused.returnCode, 5);
    await end(refused.client);
    assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'pump-1' })).reason, 'device_disabled');
    const noNew = await fleet.api('/v1/devices/pump-1/certificates', { body: { csr: (await ecKeyWithCsr()).csrPem } });
    assert.deepEqual([noNew.status, noNew.json.error.code], [409, 'device_disabled']);

    assert.equal((await fleet.api('/v1/devices/pump-1/enable', { method: 'POST' })).json.status, 'ACTIVE');
    await end(await fleet.connect(device));

    await fleet.api('/v1/devices/pump-1/revoke', { method: 'POST' });
    const back = await fleet.api('/v1/devices/pump-1/enable', { method: 'POST' });
    assert.deepEqual([back.status, back.json.error.code], [409, 'device_decommissioned']);
  });

  it('admits each of a device’s certificates on its own status (rotation overlap)', async () => {
    const first = await fleet.enroll('rotor-1');
    const key = await ecKeyWithCsr();
    const enrolled = await fleet.api('/v1/devices/rotor-1/certificates', { body: { csr: key.csrPem } });
    const second = { id: 'rotor-1', keyPem: key.keyPem, certPem: enrolled.json.certificate };
    // Both good at once: the device may come back with either while it rotates.
    await end(await fleet.connect(first));
    await end(await fleet.connect(second));
    await fleet.api(`/v1/certificates/${first.serial}/deactivate`, { method: 'POST' });
    const old = await fleet.tryConnect(first);
    assert.equal(old.returnCode, 5);
    await end(old.client);
    await end(await fleet.connect(second));
  });

  it('writes every transition to the audit log, filterable and paginated', async () => {
    const page = await fleet.api('/v1/audit?device=switch-1&limit=2');
    assert.equal(page.status, 200);
    assert.equal(page.json.entries.length, 2);
    assert.ok(page.json.next);
    const rest = await fleet.api(`/v1/audit?device=switch-1&after=${page.json.next}`);
    const actions = [...page.json.entries, ...rest.json.entries].map((e: { action: string }) => e.action);
    assert.deepEqual(actions, ['device.created', 'certificate.issued', 'certificate.deactivated', 'certificate.activated']);
    const deactivated = [...page.json.entries, ...rest.json.entries].find((e: { action: string }) => e.action === 'certificate.deactivated');
    assert.equal(deactivated.actor, 'operator:admin');
    assert.equal(deactivated.reason, 'maintenance');
    const byActor = await fleet.api('/v1/audit?actor=operator:admin&limit=500');
    assert.ok(byActor.json.entries.length >= actions.length);
    const future = await fleet.api(`/v1/audit?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`);
    assert.deepEqual(future.json.entries, []);
    const bad = await fleet.api('/v1/audit?limit=lots');
    assert.deepEqual([bad.status, bad.json.error.code], [400, 'invalid_body']);
  });
});
