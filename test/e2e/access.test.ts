// Topic access beyond a device's own namespace, over real mutual TLS: group policies with
// ${deviceId}, gateways speaking for their children, and grants withdrawn when they change.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFleet, type TestFleet, type EnrolledDevice } from '../support/fleet.js';
import { closed, end, subackCodes } from '../support/mqtt.js';
import { eventually } from '../support/wait.js';

describe('topic access', { timeout: 60_000 }, () => {
  let fleet: TestFleet;
  let member: EnrolledDevice;
  let outsider: EnrolledDevice;
  before(async () => {
    fleet = await startFleet();
    member = await fleet.enroll('lamp-1');
    outsider = await fleet.enroll('lamp-2');
    const group = await fleet.api('/v1/groups', {
      body: { id: 'lamps', description: 'street lamps', policy: { publish: ['fleet/${deviceId}/status', 'fleet/alerts'], subscribe: ['fleet/firmware/#', 'fleet/${deviceId}/config'] } },
    });
    assert.equal(group.status, 201);
    assert.equal((await fleet.api('/v1/groups/lamps/members/lamp-1', { method: 'PUT' })).json.members[0], 'lamp-1');
  });
  after(() => fleet.close());

  it('refuses policies that are not topic filters, with invalid_policy', async () => {
    for (const policy of [{ publish: ['a/#/b'], subscribe: [] }, { publish: [], subscribe: ['x/${clientId}'] }, { publish: ['a+'], subscribe: [] }]) {
      const result = await fleet.api('/v1/groups', { body: { id: 'bad', policy } });
      assert.deepEqual([result.status, result.json.error.code], [400, 'invalid_policy']);
    }
    assert.equal((await fleet.api('/v1/groups', { body: { id: 'lamps' } })).json.error.code, 'group_exists');
  });

  it('grants a member what its groups allow, with ${deviceId} as its own id, and nothing to others', async () => {
    const client = await fleet.connect(member);
    assert.deepEqual(await subackCodes(client, { 'fleet/firmware/+/latest': { qos: 1 }, 'fleet/lamp-1/config': { qos: 0 }, 'fleet/lamp-2/config': { qos: 0 }, 'fleet/#': { qos: 0 } }), [1, 0, 0x80, 0x80]);
    await client.publishAsync('fleet/lamp-1/status', 'on', { qos: 1 });
    await client.publishAsync('fleet/alerts', 'hello', { qos: 1 });
    const gone = closed(client);
    client.publish('fleet/lamp-2/status', 'spoofed');
    await gone;
    assert.equal((await fleet.logs.waitFor('refusal', { reason: 'topic_denied', topic: 'fleet/lamp-2/status' })).clientId, 'lamp-1');

    const other = await fleet.connect(outsider);
    assert.deepEqual(await subackCodes(other, { 'fleet/firmware/#': { qos: 0 } }), [0x80]);
    await end(other);
  });

  it('withdraws a grant at once when the device leaves the group: its subscription stops delivering', async () => {
    const client = await fleet.connect(member);
    const received: string[] = [];
    client.on('message', (topic) => received.push(topic));
    assert.deepEqual(await subackCodes(client, { 'fleet/lamp-1/config': { qos: 1 } }), [1]);
    // The member publishes config to itself (allowed only through the group).
    await client.publishAsync('fleet/lamp-1/status', 'x', { qos: 1 });

    await fleet.api('/v1/groups/lamps/members/lamp-1', { method: 'DELETE' });
    await fleet.logs.waitFor('grant_withdrawn', { deviceId: 'lamp-1', topic: 'fleet/lamp-1/config' });
    assert.deepEqual(await subackCodes(client, { 'fleet/firmware/#': { qos: 0 } }), [0x80]);
    assert.equal(client.connected, true, 'the rest of the session is untouched');
    await end(client);
    await fleet.api('/v1/groups/lamps/members/lamp-1', { method: 'PUT' });
  });

  it('applies a changed group policy to connected members', async () => {
    const client = await fleet.connect(member);
    assert.deepEqual(await subackCodes(client, { 'fleet/firmware/a': { qos: 0 } }), [0]);
    const changed = await fleet.api('/v1/groups/lamps/policy', { method: 'PUT', body: { publish: [], subscribe: ['fleet/news'] } });
    assert.equal(changed.status, 200);
    await fleet.logs.waitFor('grant_withdrawn', { deviceId: 'lamp-1', topic: 'fleet/firmware/a' });
    assert.deepEqual(await subackCodes(client, { 'fleet/news': { qos: 0 }, 'fleet/firmware/b': { qos: 0 } }), [0, 0x80]);
    await end(client);
  });

  describe('gateways', () => {
    let gateway: EnrolledDevice;
    before(async () => {
      gateway = await fleet.enroll('gw-1');
      await fleet.enroll('sensor-a');
      await fleet.enroll('sensor-b');
      assert.equal((await fleet.api('/v1/devices/gw-1/gateway', { method: 'PUT' })).json.gateway, true);
      const children = await fleet.api('/v1/devices/gw-1/children/sensor-a', { method: 'PUT' });
      assert.deepEqual(children.json.children, ['sensor-a']);
    });

    it('lets a gateway publish and subscribe for its children, and only for them', async () => {
      const client = await fleet.connect(gateway);
      assert.deepEqual(await subackCodes(client, { 'devices/sensor-a/commands/#': { qos: 1 }, 'devices/sensor-b/#': { qos: 0 } }), [1, 0x80]);
      const echo = new Promise<string>((resolve) => client.once('message', (topic) => resolve(topic)));
      await client.publishAsync('devices/sensor-a/commands/reset', 'now', { qos: 1 });
      assert.equal(await echo, 'devices/sensor-a/commands/reset');
      const gone = closed(client);
      client.publish('devices/sensor-b/telemetry', 'not mine');
      await gone;
      assert.equal((await fleet.logs.waitFor('refusal', { reason: 'topic_denied', topic: 'devices/sensor-b/telemetry' })).clientId, 'gw-1');
    });

    it('refuses children for a device that is no gateway, and cycles', async () => {
      const notGateway = await fleet.api('/v1/devices/sensor-b/children/sensor-a', { method: 'PUT' });
      assert.deepEqual([notGateway.status, notGateway.json.error.code], [409, 'not_a_gateway']);
      await fleet.api('/v1/devices/sensor-a/gateway', { method: 'PUT' });
      const cycle = await fleet.api('/v1/devices/sensor-a/children/gw-1', { method: 'PUT' });
      assert.deepEqual([cycle.status, cycle.json.error.code], [409, 'gateway_cycle']);
    });

    it('takes a child away from a connected gateway at once', async () => {
      const client = await fleet.connect(gateway);
      assert.deepEqual(await subackCodes(client, { 'devices/sensor-a/state': { qos: 0 } }), [0]);
      await fleet.api('/v1/devices/gw-1/children/sensor-a', { method: 'DELETE' });
      await fleet.logs.waitFor('grant_withdrawn', { deviceId: 'gw-1', topic: 'devices/sensor-a/state' });
      await eventually(async () => (await fleet.api('/v1/devices/gw-1/children')).json.children.length === 0);
      assert.deepEqual(await subackCodes(client, { 'devices/sensor-a/#': { qos: 0 } }), [0x80]);
      await end(client);
    });
  });
});
