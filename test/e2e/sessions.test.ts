// Persistent MQTT sessions on one node, over real mutual TLS: QoS 1 messages sent while a
// device is away wait for it and arrive, in order, when it comes back; a clean session drops
// them. This is the path every CONNECT takes through the broker's outgoing queue
// (broker/patches/aedes+1.2.0.patch), queue empty or not.
import assert from 'node:assert/strict';
import mqtt, { type IConnackPacket, type MqttClient } from 'mqtt';
import { after, before, describe, it } from 'node:test';
import { startFleet, type EnrolledDevice, type TestFleet } from '../support/fleet.js';
import { end } from '../support/mqtt.js';
import { eventually } from '../support/wait.js';

describe('persistent sessions', { timeout: 60_000 }, () => {
  let fleet: TestFleet;
  let device: EnrolledDevice;
  let backend: MqttClient;

  before(async () => {
    fleet = await startFleet();
    device = await fleet.enroll('valve-1');
    const dispatcher = await fleet.enroll('dispatcher');
    assert.equal((await fleet.api('/v1/groups', { body: { id: 'dispatchers', policy: { publish: ['devices/+/commands/#'], subscribe: [] } } })).status, 201);
    await fleet.api('/v1/groups/dispatchers/members/dispatcher', { method: 'PUT' });
    backend = await fleet.connect(dispatcher);
  });
  after(async () => {
    await end(backend);
    await fleet.close();
  });

  /** Connects the device, collecting what it receives from the first packet on; with whether the broker kept its session. */
  async function comeBack(clean: boolean): Promise<{ client: MqttClient; received: string[]; sessionPresent: boolean }> {
    const received: string[] = [];
    const client = mqtt.connect(fleet.mqtt(device, { clean }));
    client.on('message', (_topic, payload) => received.push(payload.toString()));
    const connack = await new Promise<IConnackPacket>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    return { client, received, sessionPresent: connack.sessionPresent };
  }

  async function sendCommands(...payloads: string[]): Promise<void> {
    for (const payload of payloads) await backend.publishAsync('devices/valve-1/commands/set', payload, { qos: 1 });
  }

  it('keeps QoS 1 messages for a device that is away, and delivers them in order when it returns', async () => {
    const first = await comeBack(false);
    await first.client.subscribeAsync('devices/valve-1/commands/#', { qos: 1 });
    await end(first.client);

    await sendCommands('c1', 'c2', 'c3', 'c4', 'c5');
    const back = await comeBack(false);
    assert.equal(back.sessionPresent, true);
    await eventually(() => back.received.length >= 5, 5000, 'the queued commands arrive');
    assert.deepEqual(back.received, ['c1', 'c2', 'c3', 'c4', 'c5']);
    // Still subscribed, without subscribing again; and nothing is delivered twice.
    await sendCommands('c6');
    await eventually(() => back.received.length >= 6, 5000, 'a new command arrives');
    await end(back.client);
    const again = await comeBack(false);
    await sendCommands('c7');
    await eventually(() => again.received.length >= 1, 5000, 'the next command arrives');
    assert.deepEqual(again.received, ['c7']);
    await end(again.client);
  });

  it('drops what was queued when the device comes back with a clean session', async () => {
    await sendCommands('stale-1', 'stale-2');
    const clean = await comeBack(true);
    assert.equal(clean.sessionPresent, false);
    await clean.client.subscribeAsync('devices/valve-1/commands/#', { qos: 1 });
    await sendCommands('fresh');
    await eventually(() => clean.received.includes('fresh'), 5000, 'the fresh command arrives');
    assert.deepEqual(clean.received, ['fresh']);
    await end(clean.client);
  });
});
