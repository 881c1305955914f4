// The fleet report on a crafted fleet: through the API and through `fleet report`.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { IClientOptions } from 'mqtt';
import { after, before, describe, it } from 'node:test';
import { startFleet, type TestFleet } from '../support/fleet.js';
import { end } from '../support/mqtt.js';
import { FLEET_BIN } from '../support/process.js';
import { eventually } from '../support/wait.js';

const DAY = 24 * 60 * 60 * 1000;

describe('fleet report', { timeout: 60_000 }, () => {
  let fleet: TestFleet;
  before(async () => {
    // Certificates issued for five days, so some expire within the report's window and others not.
    fleet = await startFleet({ certificateLifetimeMs: 5 * DAY });
  });
  after(() => fleet.close());

  it('lists certificates expiring soon, a certificate live on two connections, conflicting client ids, and certificates under a revoked CA', async () => {
    const device = await fleet.enroll('report-1');
    const other = await fleet.enroll('report-2');

    // One certificate on two connections from two addresses: a copied key.
    const first = await fleet.connect(device, { localAddress: '127.0.0.1' } as IClientOptions);
    await eventually(() => fleet.service.broker.isConnected('report-1'));
    const second = await fleet.connect(device, { localAddress: '127.0.0.2' } as IClientOptions);
    await fleet.logs.waitFor('sighting', { kind: 'shared_certificate' });
    first.end(true);
    await end(second);

    // A client id that names another device.
    const spoof = await fleet.tryConnect({ ...other, id: 'report-1' });
    assert.equal(spoof.returnCode, 5);
    await end(spoof.client);
    await fleet.logs.waitFor('sighting', { kind: 'client_id_conflict' });

    const week = await fleet.api('/v1/reports/audit?days=7');
    assert.equal(week.status, 200);
    const serials = (list: { serial: string }[]) => list.map((c) => c.serial);
    assert.ok(serials(week.json.expiring).includes(device.serial));
    assert.deepEqual(serials((await fleet.api('/v1/reports/audit?days=1')).json.expiring), []);
    assert.deepEqual(week.json.older, []);
    assert.equal(week.json.sharedCertificates[0].fingerprint, device.fingerprint);
    assert.deepEqual(week.json.sharedCertificates[0].details.peers.map((p: string) => p.split(':')[0]).sort(), ['127.0.0.1', '127.0.0.2']);
    assert.deepEqual([week.json.clientIdConflicts[0].clientId, week.json.clientIdConflicts[0].deviceId], ['report-1', 'report-2']);
    assert.deepEqual(week.json.underBadCa, []);

    const text = await promisify(execFile)(process.execPath, [FLEET_BIN, 'report', '--data', fleet.dir, '--days', '7']);
    assert.match(text.stdout, /Certificates expiring within 7 days: 2/);
    assert.match(text.stdout, /report-1 .* serial/);
    assert.match(text.stdout, /two live connections at once \(shared key\?\): 1/);
    assert.match(text.stdout, /Conflicting client ids: 1/);
  });
});
