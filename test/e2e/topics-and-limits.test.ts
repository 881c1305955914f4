// Confinement and limits over real mutual TLS: a device reaches only devices/<id>/, cannot
// send oversized or malformed packets, and is paced rather than dropped when it publishes
// too fast.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { startFleet, type TestFleet } from '../support/fleet.js';
import { closed, end, subackCodes } from '../support/mqtt.js';
import { publishPacket, rawConnect } from '../support/raw-mqtt.js';

describe('topics and limits', { timeout: 60_000 }, () => {
  let fleet: TestFleet;
  before(async () => {
    fleet = await startFleet({ broker: { maxPacketBytes: 4096, publish: { ratePerSecond: 20, burst: 5, maxBacklogMs: 1000 } } });
  });
  after(() => fleet.close());

  it('answers a foreign-topic SUBSCRIBE with 0x80 and grants its own', async () => {
    const device = await fleet.enroll('sub-1');
    const client = await fleet.connect(device);
    const before = await fleet.refusals('topic_denied');
    const codes = await subackCodes(client, { 'devices/sub-1/commands': { qos: 1 }, 'devices/other/#': { qos: 0 }, '#': { qos: 0 }, '$SYS/#': { qos: 0 } });
    assert.deepEqual(codes, [1, 0x80, 0x80, 0x80]);
    assert.equal(await fleet.refusals('topic_denied'), before + 3);
    const event = await fleet.logs.waitFor('refusal', { reason: 'topic_denied', topic: 'devices/other/#' });
    assert.equal(event.clientId, 'sub-1');
    assert.equal(event.serial, device.serial);
    assert.equal(client.connected, true, 'a refused SUBSCRIBE does not cost the connection');
    await end(client);
  });

  it('closes the connection on a foreign-topic PUBLISH, and delivers nothing', async () => {
    const spy = await fleet.enroll('victim-3');
    const spyClient = await fleet.connect(spy);
    let leaked = 0;
    spyClient.on('message', () => leaked++);
    await spyClient.subscribeAsync('devices/victim-3/#');

    const device = await fleet.enroll('pub-1');
    const client = await fleet.connect(device);
    const gone = closed(client);
    client.publish('devices/victim-3/commands', 'unlock');
    await gone;
    const event = await fleet.logs.waitFor('refusal', { reason: 'topic_denied', topic: 'devices/victim-3/commands' });
    assert.equal(event.clientId, 'pub-1');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(leaked, 0);
    await end(spyClient);
  });

  it('refuses a will outside the namespace at CONNECT', async () => {
    const device = await fleet.enroll('will-1');
    const outcome = await fleet.tryConnect(device, { will: { topic: 'devices/someone-else/status', payload: Buffer.from('gone'), qos: 0, retain: false } });
    assert.equal(outcome.returnCode, 5);
    await end(outcome.client);
    assert.equal((await fleet.logs.waitFor('refusal', { clientId: 'will-1' })).reason, 'topic_denied');
  });

  it('closes a connection that announces a packet above the size limit', async () => {
    const device = await fleet.enroll('big-1');
    const client = await fleet.connect(device);
    const gone = closed(client);
    client.publish('devices/big-1/blob', Buffer.alloc(8192, 1));
    await gone;
    const event = await fleet.logs.waitFor('refusal', { reason: 'packet_too_large', serial: device.serial });
    assert.match(String(event.detail), /4096 allowed/);
    // Within the limit is fine.
    const again = await fleet.connect(device);
    await again.publishAsync('devices/big-1/blob', Buffer.alloc(2048, 1), { qos: 1 });
    await end(again);
  });

  it('closes a connection that sends a malformed packet', async () => {
    const device = await fleet.enroll('bad-bytes-1');
    const socket = await rawConnect(fleet.service.mqttPort, fleet.ca, device);
    const before = await fleet.refusals('protocol_violation');
    // PUBREL with header flags 0000: MQTT 3.1.1 §3.6.1 requires 0010.
    socket.write(Buffer.from([0x60, 0x02, 0x00, 0x01]));
    await once(socket, 'close');
    const event = await fleet.logs.waitFor('refusal', { reason: 'protocol_violation', clientId: 'bad-bytes-1' });
    assert.equal(event.stage, 'stream');
    assert.equal(await fleet.refusals('protocol_violation'), before + 1);
  });

  it('paces a fast publisher instead of dropping: every message arrives, at the allowed rate', async () => {
    const device = await fleet.enroll('fast-1');
    const client = await fleet.connect(device);
    const received: number[] = [];
    client.on('message', (_topic, payload) => received.push(Number(payload.toString())));
    await client.subscribeAsync('devices/fast-1/seq', { qos: 1 });
    const started = Date.now();
    // 15 at once against burst 5 and 20/s: the last 10 wait in turn, 50 ms apart.
    await Promise.all(Array.from({ length: 15 }, (_, i) => client.publishAsync('devices/fast-1/seq', String(i), { qos: 1 })));
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 400, `15 publishes took ${elapsed} ms; pacing should stretch them over ≥ 450 ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(received, Array.from({ length: 15 }, (_, i) => i));
    assert.equal(client.connected, true);
    await end(client);
  });

  it('disconnects a device that stays far behind its allowance', async () => {
    const device = await fleet.enroll('flood-1');
    const socket = await rawConnect(fleet.service.mqttPort, fleet.ca, device);
    // One write, one chunk: 60 publishes against burst 5 at 20/s is 2.75 s of backlog, over the 1 s allowed.
    socket.write(Buffer.concat(Array.from({ length: 60 }, (_, i) => publishPacket('devices/flood-1/t', String(i)))));
    await once(socket, 'close');
    const event = await fleet.logs.waitFor('refusal', { reason: 'publish_rate_exceeded', clientId: 'flood-1' });
    assert.equal(event.stage, 'publish');
  });
});
