// $fleet/certificates/renew/json in the broker core, over in-memory streams: a reply reaches
// the session that asked and no other, the request reaches no subscriber, and malformed or
// overlapping requests are refused with their codes. (The renewal itself is provisioning's,
// tested end to end over real mutual TLS in test/e2e/renewal.test.ts.)
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { MqttClient } from 'mqtt';
import { RENEW_ACCEPTED, RENEW_REJECTED, RENEW_TOPIC, type RenewalOutcome, type RenewalPort } from '../../broker/fleet-topics/renew.js';
import type { PeerFacts } from '../../broker/peer.js';
import type { DeviceId, Fingerprint, SerialHex } from '../../registry/ids.js';
import type { AdmissionRecord } from '../../registry/model.js';
import { memoryBroker } from '../support/memory-broker.js';
import { subackCodes } from '../support/mqtt.js';
import { eventually } from '../support/wait.js';

const devices = ['dev-a', 'dev-b', 'dev-c'].map((id, i) => {
  const fingerprint = String(i + 1).repeat(64) as Fingerprint;
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + 3_600_000);
  const peer: PeerFacts = { address: `memory:${i}`, certificate: { serial: `0${i + 1}`, fingerprint, commonName: id, subject: `CN=${id}`, issuer: 'CN=Issuing', notBefore, notAfter } };
  const record: AdmissionRecord = { serial: `0${i + 1}` as SerialHex, fingerprint, deviceId: id as DeviceId, certificateStatus: 'ACTIVE', deviceStatus: 'ACTIVE', notBefore, notAfter };
  return { id, fingerprint, peer, record };
});

/** Renews whoever asks with a certificate named after its fingerprint; a CSR "refuse" is refused. */
function port(calls: string[], hold?: Promise<void>): RenewalPort {
  return {
    async renew(fingerprint, csr): Promise<RenewalOutcome> {
      calls.push(fingerprint);
      await hold;
      if (csr === 'refuse') return { ok: false, code: 'csr_malformed', message: 'not a CSR' };
      return { ok: true, certificate: { serial: `new-${fingerprint.slice(0, 4)}`, certificate: '-----BEGIN CERTIFICATE-----' } };
    },
    renewalWindowMs: () => Promise.resolve(0),
  };
}

async function setup(t: TestContext, renewal: RenewalPort) {
  const memory = await memoryBroker({ admissionRecord: (f) => Promise.resolve(devices.find((d) => d.fingerprint === f)?.record) }, () => new Date(), {}, { renewal });
  const connected = await Promise.all(devices.map((d) => memory.connect(d.peer, { clientId: d.id })));
  const inbox = connected.map(({ client }) => {
    const received: { topic: string; body: { serial?: string; error?: { code: string; message: string } } }[] = [];
    client.on('message', (topic, payload) => received.push({ topic, body: JSON.parse(payload.toString()) as (typeof received)[number]['body'] }));
    return received;
  });
  t.after(() => memory.close());
  return { memory, clients: connected.map((c) => c.client), inbox };
}

const subscribeReplies = (client: MqttClient) => subackCodes(client, { [RENEW_ACCEPTED]: { qos: 1 }, [RENEW_REJECTED]: { qos: 1 } });

describe('$fleet/certificates/renew/json', () => {
  it('answers the session that asked, and only it, though every device holds the same reply filters', async (t) => {
    const calls: string[] = [];
    const { clients, inbox } = await setup(t, port(calls));
    assert.deepEqual(await subscribeReplies(clients[0]!), [1, 1]);
    assert.deepEqual(await subscribeReplies(clients[1]!), [1, 1]);
    clients[0]!.publish(RENEW_TOPIC, JSON.stringify({ csr: 'a-csr' }), { qos: 1 });
    await eventually(() => inbox[0]!.length === 1, 3000, 'the reply');
    clients[1]!.publish(RENEW_TOPIC, JSON.stringify({ csr: 'refuse' }), { qos: 0 });
    await eventually(() => inbox[1]!.length === 1, 3000, 'the other reply');
    assert.deepEqual(inbox[0], [{ topic: RENEW_ACCEPTED, body: { serial: `new-${devices[0]!.fingerprint.slice(0, 4)}`, certificate: '-----BEGIN CERTIFICATE-----' } }]);
    assert.deepEqual(inbox[1], [{ topic: RENEW_REJECTED, body: { error: { code: 'csr_malformed', message: 'not a CSR' } } }]);
    assert.deepEqual(calls, [devices[0]!.fingerprint, devices[1]!.fingerprint], 'each renewal is for the session’s own certificate');
    assert.deepEqual(inbox[2], []);
  });

  it('lets no one subscribe to the request topic, and refuses a malformed request with its code', async (t) => {
    const calls: string[] = [];
    const { clients, inbox } = await setup(t, port(calls));
    assert.deepEqual(await subackCodes(clients[2]!, { [RENEW_TOPIC]: { qos: 0 }, '$fleet/certificates/#': { qos: 0 } }), [0x80, 0x80]);
    await subscribeReplies(clients[0]!);
    clients[0]!.publish(RENEW_TOPIC, 'not json');
    clients[0]!.publish(RENEW_TOPIC, JSON.stringify({ csr: 'x', deviceId: 'dev-b' }));
    await eventually(() => inbox[0]!.length === 2, 3000, 'two replies');
    assert.deepEqual(inbox[0]!.map((m) => [m.topic, m.body.error?.code]), [[RENEW_REJECTED, 'request_malformed'], [RENEW_REJECTED, 'request_malformed']]);
    assert.deepEqual(calls, []);
    assert.deepEqual(inbox[2], []);
  });

  it('issues nothing to a session not subscribed to the answer', async (t) => {
    const calls: string[] = [];
    const { memory, clients } = await setup(t, port(calls));
    await eventually(() => memory.broker.isConnected('dev-c'), 3000, 'dev-c ready');
    clients[2]!.publish(RENEW_TOPIC, JSON.stringify({ csr: 'c-csr' }));
    await memory.logs.waitFor('renewal_unanswerable', { deviceId: 'dev-c' });
    assert.deepEqual(calls, []);
    assert.equal(memory.broker.isConnected('dev-c'), true, 'and stays connected');
  });

  it('refuses a second request while the first is in flight', async (t) => {
    const calls: string[] = [];
    let release!: () => void;
    const { clients, inbox } = await setup(t, port(calls, new Promise<void>((resolve) => (release = resolve))));
    await subscribeReplies(clients[0]!);
    clients[0]!.publish(RENEW_TOPIC, JSON.stringify({ csr: 'first' }));
    await eventually(() => calls.length === 1, 3000, 'the first request');
    clients[0]!.publish(RENEW_TOPIC, JSON.stringify({ csr: 'second' }));
    await eventually(() => inbox[0]!.length === 1, 3000, 'the refusal');
    release();
    await eventually(() => inbox[0]!.length === 2, 3000, 'the answer');
    assert.deepEqual(inbox[0]!.map((m) => m.topic), [RENEW_REJECTED, RENEW_ACCEPTED]);
    assert.equal(inbox[0]![0]!.body.error?.code, 'renewal_in_progress');
    assert.equal(calls.length, 1);
  });
});
