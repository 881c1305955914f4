// Operating the broker over real mutual TLS: phased enforcement, break-glass, presence
// events, takeovers and the metrics operators watch.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { expiredButRegistered, unregisteredDevice } from '../support/fixtures.js';
import { addOperator, startFleet, type TestFleet } from '../support/fleet.js';
import { closed, end, subackCodes } from '../support/mqtt.js';
import { eventually } from '../support/wait.js';

async function wouldRefuseCount(fleet: TestFleet, reason: string): Promise<number> {
  const text = (await fleet.api('/metrics', { anonymous: true })).body.toString();
  return Number(text.split('\n').find((l) => l.startsWith(`fleet_would_refuse_total{reason="${reason}"}`))?.split(' ').pop() ?? NaN);
}

describe('phased enforcement', { timeout: 60_000 }, () => {
  let fleet: TestFleet;
  before(async () => {
    fleet = await startFleet();
  });
  after(() => fleet.close());

  it('in monitor mode admits what enforcement would refuse, counts it and says who it is', async () => {
    const revoked = await fleet.enroll('mon-revoked');
    await fleet.api(`/v1/certificates/${revoked.serial}/revoke`, { method: 'POST' });
    const switched = await fleet.api('/v1/broker/enforcement', { method: 'PUT', body: { mode: 'monitor' } });
    assert.equal(switched.status, 200);
    await eventually(async () => (await fleet.api('/v1/broker/enforcement')).json.listener === 'monitor');

    const before = await wouldRefuseCount(fleet, 'unregistered_certificate');
    const ghost = await unregisteredDevice(fleet, 'mon-ghost');
    const client = await fleet.connect(ghost);
    assert.equal((await fleet.logs.waitFor('would_refuse', { clientId: 'mon-ghost' })).reason, 'unregistered_certificate');
    assert.equal(await wouldRefuseCount(fleet, 'unregistered_certificate'), before + 1);
    // Its topics are monitored too: outside its namespace, granted and recorded.
    assert.deepEqual(await subackCodes(client, { 'devices/elsewhere/#': { qos: 0 } }), [0]);
    await fleet.logs.waitFor('would_refuse', { reason: 'topic_denied', topic: 'devices/elsewhere/#' });
    await end(client);

    const legacy = await fleet.connect({ id: 'mon-legacy' });
    assert.equal((await fleet.logs.waitFor('would_refuse', { clientId: 'mon-legacy' })).reason, 'no_client_certificate');
    await end(legacy);

    // What an operator decided stays decided.
    const refused = await fleet.tryConnect(revoked);
    assert.equal(refused.returnCode, 5);
    await end(refused.client);

    const report = (await fleet.api('/v1/broker/enforcement')).json;
    const who = report.wouldRefuse.map((w: { reason: string; clientId: string }) => `${w.reason}:${w.clientId}`);
    assert.ok(who.includes('unregistered_certificate:mon-ghost') && who.includes('no_client_certificate:mon-legacy'), JSON.stringify(who));

    await fleet.api('/v1/broker/enforcement', { method: 'PUT', body: { mode: 'enforce' } });
    await eventually(async () => (await fleet.api('/v1/broker/enforcement')).json.listener === 'enforce');
    const enforced = await fleet.tryConnect(ghost);
    assert.equal(enforced.returnCode, 5);
    await end(enforced.client);
    const audit = (await fleet.api('/v1/audit?actor=operator:admin&limit=500')).json.entries.filter((e: { action: string }) => e.action === 'enforcement.changed');
    assert.deepEqual(audit.map((e: { details: { mode: string } }) => e.details.mode), ['monitor', 'enforce']);
  });

  it('in monitor mode never lets a connection take over the live session of an authenticated device', async () => {
    const victim = await fleet.enroll('mon-victim');
    const live = await fleet.connect(victim);
    const inbox: string[] = [];
    live.on('message', (_topic, payload) => inbox.push(payload.toString()));
    await live.subscribeAsync('devices/mon-victim/#', { qos: 1 });
    await fleet.api('/v1/broker/enforcement', { method: 'PUT', body: { mode: 'monitor' } });
    await eventually(async () => (await fleet.api('/v1/broker/enforcement')).json.listener === 'monitor');
    try {
      // No certificate, and a certificate of another device, both naming the victim's client id.
      const other = await fleet.enroll('mon-intruder');
      for (const [identity, reason] of [[{ id: 'mon-victim' }, 'no_client_certificate'], [{ ...other, id: 'mon-victim' }, 'client_id_mismatch']] as const) {
        const intruder = await fleet.tryConnect(identity);
        assert.equal(intruder.returnCode, 5, reason);
        await end(intruder.client);
        await eventually(() => fleet.logs.refusals({ clientId: 'mon-victim', reason }).length === 1, 5000, `refused as ${reason}`);
      }
      assert.equal(live.connected, true, 'the authenticated session lives on');
      await live.publishAsync('devices/mon-victim/ping', 'still mine', { qos: 1 });
      await eventually(() => inbox.includes('still mine'), 5000, 'its subscription still delivers');

      // Once it is gone, a device without a certificate is monitored as before.
      await end(live);
      await eventually(async () => !(await fleet.api('/v1/devices/mon-victim')).json.connected, 5000, 'the victim disconnected');
      const legacy = await fleet.connect({ id: 'mon-victim' });
      await fleet.logs.waitFor('would_refuse', { clientId: 'mon-victim', reason: 'no_client_certificate' });
      // And the device itself, authenticated, takes its id back from a monitored session.
      const gone = closed(legacy);
      const back = await fleet.connect(victim);
      await gone;
      await end(back);
    } finally {
      await fleet.api('/v1/broker/enforcement', { method: 'PUT', body: { mode: 'enforce' } });
      await eventually(async () => (await fleet.api('/v1/broker/enforcement')).json.listener === 'enforce');
    }
  });

  it('monitors one group while the rest of the fleet is enforced', async () => {
    await fleet.enroll('pilot-1');
    await fleet.enroll('other-1');
    await fleet.api('/v1/groups', { body: { id: 'pilot' } });
    await fleet.api('/v1/groups/pilot/members/pilot-1', { method: 'PUT' });
    assert.equal((await fleet.api('/v1/groups/pilot/enforcement', { method: 'PUT', body: { mode: 'monitor' } })).status, 200);
    await eventually(async () => Boolean((await fleet.api('/v1/broker/enforcement')).json.monitoredGroups.includes('pilot')));

    const pilot = await expiredButRegistered(fleet, 'pilot-1');
    const client = await fleet.connect(pilot);
    assert.equal((await fleet.logs.waitFor('would_refuse', { clientId: 'pilot-1' })).reason, 'certificate_expired');
    await end(client);
    const other = await fleet.tryConnect(await expiredButRegistered(fleet, 'other-1'));
    assert.equal(other.returnCode, 5);
    await end(other.client);
    assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'other-1' })).reason, 'certificate_expired');
    const bad = await fleet.api('/v1/groups/nope/enforcement', { method: 'PUT', body: { mode: 'monitor' } });
    assert.deepEqual([bad.status, bad.json.error.code], [404, 'group_not_found']);
  });
});

describe('break-glass', { timeout: 60_000 }, () => {
  let fleet: TestFleet;
  let bob: string;
  // The service clock; a test moves it past a grant's end.
  let offsetMs = 0;
  before(async () => {
    fleet = await startFleet({ clock: () => new Date(Date.now() + offsetMs) });
    bob = await addOperator(fleet.dir, 'bob');
  });
  after(() => fleet.close());

  const open = (body: Record<string, unknown>) => fleet.api('/v1/break-glass', { body: { reason: 'field unit offline for months, needs one connection to renew', ...body } });

  it('needs a second operator, then lets an expired certificate in until the grant ends by itself', async () => {
    await fleet.enroll('bg-1');
    const expired = await expiredButRegistered(fleet, 'bg-1');
    const opened = await open({ deviceId: 'bg-1', waives: 'certificate_expired', durationSeconds: 3 });
    assert.deepEqual([opened.status, opened.json.status, opened.json.requestedBy], [201, 'PENDING', 'operator:admin']);
    const pending = await fleet.tryConnect(expired);
    assert.equal(pending.returnCode, 5, 'a pending grant does nothing');
    await end(pending.client);

    const self = await fleet.api(`/v1/break-glass/${opened.json.id}/approve`, { method: 'POST' });
    assert.deepEqual([self.status, self.json.error.code], [409, 'grant_self_approval']);
    const approved = await fleet.api(`/v1/break-glass/${opened.json.id}/approve`, { method: 'POST', token: bob });
    assert.deepEqual([approved.status, approved.json.status, approved.json.approvedBy], [200, 'ACTIVE', 'operator:bob']);

    await eventually(async () => {
      const attempt = await fleet.tryConnect(expired);
      if (attempt.returnCode === 0) {
        const gone = closed(attempt.client);
        const used = await fleet.logs.waitFor('break_glass_used', { clientId: 'bg-1' });
        assert.deepEqual([used.waived, used.grant], ['certificate_expired', opened.json.id]);
        // It ends by itself, and so does the session it let in.
        await gone;
        return true;
      }
      await end(attempt.client);
      return false;
    }, 5000, 'admitted once the approval reached the broker');
    assert.equal((await fleet.logs.waitFor('session_terminated', { deviceId: 'bg-1' })).reason, 'certificate_expired');
    const after = await fleet.tryConnect(expired);
    assert.equal(after.returnCode, 5);
    await end(after.client);
    const audit = (await fleet.api('/v1/audit?device=bg-1&limit=500')).json.entries.map((e: { action: string }) => e.action);
    for (const action of ['grant.opened', 'grant.approved', 'grant.used']) assert.ok(audit.includes(action), action);
    assert.match((await fleet.api('/metrics', { anonymous: true })).body.toString(), /fleet_break_glass_uses_total\{waived="certificate_expired"\} 1/);
  });

  it('can be closed early, which closes what it let in', async () => {
    await fleet.enroll('bg-2');
    const expired = await expiredButRegistered(fleet, 'bg-2');
    const opened = await open({ deviceId: 'bg-2', waives: 'certificate_expired', durationSeconds: 600 });
    await fleet.api(`/v1/break-glass/${opened.json.id}/approve`, { method: 'POST', token: bob });
    await eventually(async () => {
      const attempt = await fleet.tryConnect(expired);
      if (attempt.returnCode !== 0) await end(attempt.client);
      else {
        const gone = closed(attempt.client);
        const shut = await fleet.api(`/v1/break-glass/${opened.json.id}/close`, { method: 'POST' });
        assert.equal(shut.json.status, 'CLOSED');
        await gone;
      }
      return attempt.returnCode === 0;
    }, 5000, 'admitted through the grant');
    const list = (await fleet.api('/v1/break-glass')).json.grants;
    assert.equal(list.find((g: { id: string }) => g.id === opened.json.id).status, 'CLOSED');
    const again = await fleet.api(`/v1/break-glass/${opened.json.id}/close`, { method: 'POST' });
    assert.deepEqual([again.status, again.json.error.code], [409, 'grant_ended']);
  });

  it('says a grant has expired, and admits nothing through it, once the service clock passes its end', async () => {
    await fleet.enroll('bg-4');
    const expired = await expiredButRegistered(fleet, 'bg-4');
    const opened = await open({ deviceId: 'bg-4', waives: 'certificate_expired', durationSeconds: 600 });
    const approved = await fleet.api(`/v1/break-glass/${opened.json.id}/approve`, { method: 'POST', token: bob });
    assert.equal(approved.json.status, 'ACTIVE');
    offsetMs = 601_000;
    try {
      assert.equal((await fleet.api(`/v1/break-glass/${opened.json.id}`)).json.status, 'EXPIRED');
      assert.equal((await fleet.api('/v1/break-glass')).json.grants.find((g: { id: string }) => g.id === opened.json.id).status, 'EXPIRED');
      const refused = await fleet.tryConnect(expired);
      assert.equal(refused.returnCode, 5);
      await end(refused.client);
      assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'bg-4' })).reason, 'certificate_expired');
    } finally {
      offsetMs = 0;
    }
  });

  it('never lets a revoked certificate through', async () => {
    const notWaivable = await open({ deviceId: 'bg-1', waives: 'certificate_revoked', durationSeconds: 60 });
    assert.deepEqual([notWaivable.status, notWaivable.json.error.code], [400, 'grant_not_waivable']);
    // A grant for another failure does not help a revoked certificate either.
    await fleet.enroll('bg-3');
    const expired = await expiredButRegistered(fleet, 'bg-3');
    await fleet.api(`/v1/certificates/${expired.serial}/revoke`, { method: 'POST' });
    const opened = await open({ deviceId: 'bg-3', waives: 'certificate_expired', durationSeconds: 60 });
    await fleet.api(`/v1/break-glass/${opened.json.id}/approve`, { method: 'POST', token: bob });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const refused = await fleet.tryConnect(expired);
    assert.equal(refused.returnCode, 5);
    await end(refused.client);
    assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'bg-3', reason: 'certificate_revoked' })).serial, expired.serial);
  });

  it('refuses grants that are too long or too loose', async () => {
    const long = await open({ deviceId: 'bg-1', waives: 'certificate_expired', durationSeconds: 10 * 24 * 3600 });
    assert.deepEqual([long.status, long.json.error.code], [400, 'grant_too_long']);
    const loose = await open({ deviceId: 'bg-1', waives: 'unregistered_certificate', durationSeconds: 60 });
    assert.deepEqual([loose.status, loose.json.error.code], [400, 'grant_needs_fingerprint']);
    const nobody = await open({ deviceId: 'nobody', waives: 'certificate_expired', durationSeconds: 60 });
    assert.deepEqual([nobody.status, nobody.json.error.code], [404, 'device_not_found']);
  });
});

describe('presence, takeovers and metrics', { timeout: 60_000 }, () => {
  let fleet: TestFleet;
  before(async () => {
    fleet = await startFleet();
  });
  after(() => fleet.close());

  it('publishes connected and disconnected events to backend services allowed to read them', async () => {
    const backend = await fleet.enroll('telemetry-reader');
    await fleet.api('/v1/groups', { body: { id: 'backend', policy: { publish: [], subscribe: ['$fleet/events/presence/#'] } } });
    await fleet.api('/v1/groups/backend/members/telemetry-reader', { method: 'PUT' });
    const reader = await fleet.connect(backend);
    const events: { topic: string; body: { deviceId: string; reason?: string } }[] = [];
    reader.on('message', (topic, payload) => events.push({ topic, body: JSON.parse(payload.toString()) }));
    assert.deepEqual(await subackCodes(reader, { '$fleet/events/presence/#': { qos: 0 } }), [0]);

    const device = await fleet.enroll('watched-1');
    await fleet.connect(device);
    await eventually(() => events.some((e) => e.topic === '$fleet/events/presence/connected/watched-1'));
    await fleet.api(`/v1/certificates/${device.serial}/revoke`, { method: 'POST' });
    await eventually(() => events.some((e) => e.topic === '$fleet/events/presence/disconnected/watched-1'));
    assert.equal(events.find((e) => e.topic.endsWith('disconnected/watched-1'))!.body.reason, 'certificate_revoked');

    // Ordinary devices cannot read them.
    const nosy = await fleet.connect(await fleet.enroll('nosy-1'));
    assert.deepEqual(await subackCodes(nosy, { '$fleet/events/presence/#': { qos: 0 } }), [0x80]);
    await end(nosy);
    await end(reader);
  });

  it('counts and logs a takeover by a second connection of the same device', async () => {
    const device = await fleet.enroll('twice-1');
    const first = await fleet.connect(device);
    await eventually(() => fleet.service.broker.isConnected('twice-1'));
    const gone = closed(first);
    const second = await fleet.connect(device);
    await gone;
    assert.equal(((await fleet.logs.waitFor('takeover', { deviceId: 'twice-1' })).previousPeers as string[]).length, 1);
    assert.match((await fleet.api('/metrics', { anonymous: true })).body.toString(), /fleet_takeovers_total [1-9]/);
    await end(second);
  });

  it('exports handshake and admission latency, connected devices and expiring certificates', async () => {
    const text = (await fleet.api('/metrics', { anonymous: true })).body.toString();
    assert.match(text, /fleet_tls_handshake_seconds_count [1-9]/);
    assert.match(text, /fleet_admission_seconds_count [1-9]/);
    assert.match(text, /^fleet_connected_devices \d+/m);
    // Every certificate here lives 30 days, so each one counts as expiring within 30.
    assert.match(text, /^fleet_certificates_expiring_30d \d+/m);
  });
});
