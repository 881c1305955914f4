// The virtual device's state machine against a plain Aedes broker over mutual TLS whose
// answers the test scripts: CONNACK codes per attempt, PUBACKs held back, connections cut.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { Aedes, type Client } from 'aedes';
import { BoundedGate } from '../../firmware-sim/gate.js';
import { FirmwareDevice, type DeviceEnvironment, type DeviceObserver } from '../../firmware-sim/device/firmware.js';
import type { IssuedIdentity } from '../../firmware-sim/device/credentials.js';
import { MqttRenewer, type Renewer } from '../../firmware-sim/device/issuance.js';
import { DEFAULT_RENEWAL } from '../../firmware-sim/device/renewal.js';
import { errorCode } from '../../firmware-sim/error-code.js';
import { RENEW_TOPIC } from '../../broker/fleet-topics/renew.js';
import { checkCsr } from '../../provisioning/pki/csr.js';
import { TimerQueue } from '../../firmware-sim/timers.js';
import { generateKeyPair } from '../../provisioning/pki/keys.js';
import type { CaSigner } from '../../provisioning/pki/signer.js';
import { x509 } from '../../provisioning/pki/x509.js';
import { deviceSignedBy, operatorCa } from '../support/fixtures.js';
import { eventually } from '../support/wait.js';

const DAY = 24 * 60 * 60 * 1000;

interface ScriptedBroker {
  port: number;
  /** CONNACK codes for the coming attempts, in order; admitted (0) once they run out. */
  connacks: number[];
  /** Serial numbers of the client certificates of admitted connections, in order. */
  admittedSerials: string[];
  attempts: number;
  /** QoS 1 readings that reach the broker: "device:seq". */
  readings: string[];
  /** While true, the broker neither forwards nor acknowledges publishes. */
  holdPublishes: boolean;
  /** Answers to the coming renewal requests on $fleet/certificates/renew/json: 'issue' signs the CSR, 'silent' answers nothing, any other string rejects with it as the code. */
  renewAnswers: string[];
  /** Client ids that asked for a renewal, in order. */
  renewRequests: string[];
  clients: Map<string, Client>;
  close(): Promise<void>;
}

async function scriptedBroker(ca: CaSigner): Promise<ScriptedBroker> {
  const keys = await generateKeyPair();
  const now = Date.now();
  const server = await ca.issueServer('localhost', { dns: ['localhost'], ips: ['127.0.0.1'] }, await x509.PublicKey.create(keys.publicKey), { notBefore: new Date(now - DAY), notAfter: new Date(now + DAY) });
  const keyPem = x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
  const state: Omit<ScriptedBroker, 'port' | 'close'> = { connacks: [], admittedSerials: [], attempts: 0, readings: [], holdPublishes: false, renewAnswers: [], renewRequests: [], clients: new Map() };
  // The service's renewal over MQTT, reduced to its contract: the reply goes to the session that asked.
  const renew = (client: Client, payload: Buffer) => {
    state.renewRequests.push(client.id);
    const answer = state.renewAnswers.shift() ?? 'issue';
    if (answer === 'silent') return;
    const reply = (topic: string, body: unknown) => client.publish({ cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(body)), qos: 0, retain: false, dup: false }, () => undefined);
    if (answer !== 'issue') return reply(`${RENEW_TOPIC}/rejected`, { error: { code: answer, message: 'refused by script' } });
    const now = Date.now();
    const cert = ca.issueDevice(client.id, checkCsr((JSON.parse(payload.toString()) as { csr: string }).csr).spki, { notBefore: new Date(now - DAY), notAfter: new Date(now + DAY) }, 'http://127.0.0.1/crl');
    reply(`${RENEW_TOPIC}/accepted`, { serial: cert.serial, fingerprint: cert.fingerprint, certificate: cert.pem, chain: ca.pem, notBefore: new Date(now - DAY).toISOString(), notAfter: new Date(now + DAY).toISOString() });
  };
  const aedes = await Aedes.createBroker({
    authenticate(client, _user, _password, done) {
      state.attempts++;
      const code = state.connacks.shift() ?? 0;
      if (code !== 0) return done(Object.assign(new Error('refused by script'), { returnCode: code }), false);
      state.admittedSerials.push((client.conn as TLSSocket).getPeerCertificate().serialNumber);
      state.clients.set(client.id, client);
      done(null, true);
    },
    authorizePublish(client, packet, done) {
      if (state.holdPublishes) return; // neither forwarded nor acknowledged
      if (client && packet.topic === RENEW_TOPIC) renew(client, packet.payload as Buffer);
      if (client && packet.topic.endsWith('/telemetry')) state.readings.push(`${client.id}:${(JSON.parse(packet.payload.toString()) as { seq: number }).seq}`);
      done(null);
    },
  });
  const listener = tls.createServer({ key: keyPem, cert: server.pem, ca: ca.pem, requestCert: true, rejectUnauthorized: true }, (socket) => aedes.handle(socket));
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  return Object.assign(state, {
    port: (listener.address() as AddressInfo).port,
    async close() {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      listener.close();
    },
  });
}

/** What the device told its observer, by kind. */
function observer() {
  const events = { failures: [] as string[], connects: 0, reconnects: 0, drops: 0, stops: [] as string[], acks: 0, renewals: 0, renewedVia: [] as string[], renewalFailures: [] as string[], commands: 0 };
  const o: DeviceObserver = {
    attempt: () => undefined,
    connected: (_d, _ms, reconnect) => (events.connects++, reconnect && events.reconnects++),
    connectFailed: (_d, reason) => events.failures.push(reason),
    dropped: () => events.drops++,
    stopped: (_d, reason) => events.stops.push(reason),
    published: () => undefined,
    completed: () => events.acks++,
    renewed: (_d, channel) => (events.renewals++, events.renewedVia.push(channel)),
    renewalFailed: (_d, channel, error) => events.renewalFailures.push(`${channel}:${errorCode(error)}`),
    command: () => events.commands++,
  };
  return { o, events };
}

describe('FirmwareDevice against a scripted broker', { timeout: 30_000 }, () => {
  let ca: CaSigner;
  let broker: ScriptedBroker;
  const timers = new TimerQueue();
  const started: FirmwareDevice[] = [];

  before(async () => {
    ca = await operatorCa('Device Test Root');
    broker = await scriptedBroker(ca);
  });
  after(async () => {
    await Promise.all(started.map((d) => d.shutdown()));
    timers.stop();
    await broker.close();
  });

  const issue = async (id: string): Promise<IssuedIdentity> => {
    const cert = await deviceSignedBy(ca, id);
    const parsed = new x509.X509Certificate(cert.certPem);
    return { keyPem: cert.keyPem, certificatePem: cert.certPem, serial: cert.serial, notBefore: parsed.notBefore.toISOString(), notAfter: parsed.notAfter.toISOString() };
  };

  async function device(id: string, overrides: Partial<DeviceEnvironment> = {}, renewer?: Renewer) {
    const { o, events } = observer();
    const env: DeviceEnvironment = {
      broker: { host: '127.0.0.1', port: broker.port },
      caPem: ca.pem,
      timers,
      random: Math.random,
      backoff: { baseMs: 20, capMs: 100 },
      renewal: DEFAULT_RENEWAL,
      enroller: { channel: 'api', enroll: issue },
      renewer: { channel: 'api', renew: (device) => issue(device.id) },
      gate: new BoundedGate(4),
      observer: o,
      qos: 1,
      keepaliveSeconds: 30,
      connectTimeoutMs: 5000,
      ...overrides,
    };
    const d = new FirmwareDevice(id, env, { renewer });
    await d.enroll();
    started.push(d);
    return { d, events };
  }

  it('stops for good on CONNACK 5 (not authorized) and never dials again', async () => {
    const { d, events } = await device('refused-1');
    broker.connacks.push(5);
    d.start();
    await eventually(() => d.state === 'stopped', 5000, 'stopped');
    assert.equal(d.stopReason, 'not_authorized');
    assert.deepEqual(events.stops, ['not_authorized']);
    await new Promise((resolve) => setTimeout(resolve, 300)); // three backoff caps
    assert.equal(d.counts.attempts, 1);
    assert.equal(d.renewalDueAt, undefined, 'no renewal for a refused identity');
  });

  it('backs off and tries again after any other refusal, until admitted', async () => {
    const { d, events } = await device('unlucky-1');
    broker.connacks.push(3, 3);
    d.start();
    await eventually(() => d.state === 'online', 5000, 'online');
    assert.deepEqual(events.failures, ['server_unavailable', 'server_unavailable']);
    assert.equal(d.counts.attempts, 3);
    assert.equal(events.connects, 1);
  });

  it('retries an unreachable broker with backoff, naming the socket error', async () => {
    const closed = tls.createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    const { d, events } = await device('lonely-1', { broker: { host: '127.0.0.1', port } });
    d.start();
    await eventually(() => events.failures.length >= 3, 5000, 'three failures');
    assert.ok(events.failures.every((f) => f === 'ECONNREFUSED'), events.failures.join());
    assert.notEqual(d.state, 'stopped');
    await d.shutdown();
    const attempts = d.counts.attempts;
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(d.counts.attempts, attempts, 'no attempt after shutdown');
  });

  it('reconnects after a drop and sends again what was not acknowledged', async () => {
    const { d, events } = await device('dropped-1');
    d.start();
    await eventually(() => d.state === 'online', 5000, 'online');
    d.publishReading();
    await eventually(() => events.acks === 1, 5000, 'first ack');
    broker.holdPublishes = true;
    d.publishReading();
    d.publishReading();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(d.outbox.size, 2, 'two readings wait for their PUBACK');
    broker.holdPublishes = false;
    broker.clients.get('dropped-1')!.close(); // the broker side ends the connection
    await eventually(() => events.reconnects === 1 && d.outbox.size === 0, 5000, 'reconnected and drained');
    assert.equal(events.drops, 1);
    assert.deepEqual(broker.readings.filter((r) => r.startsWith('dropped-1:')).sort(), ['dropped-1:1', 'dropped-1:2', 'dropped-1:3']);
  });

  it('switches to renewed credentials beside the old connection, without a drop', async () => {
    const { d, events } = await device('rotating-1');
    d.start();
    await eventually(() => d.state === 'online', 5000, 'online');
    const first = d.connectedSerial!;
    d.renewNow();
    await eventually(() => d.state === 'online' && d.connectedSerial !== first, 5000, 'on the new certificate');
    assert.equal(events.renewals, 1);
    assert.equal(events.drops, 0);
    assert.deepEqual(events.failures, []);
    assert.equal(d.credentials!.serial, d.connectedSerial);
    assert.equal(broker.admittedSerials.at(-1)!.toLowerCase(), d.connectedSerial!.replace(/:/g, '').toLowerCase());
    // The fixture certificates run from a day ago to a day ahead: two thirds in is 8 h ahead,
    // ± 5 % of the 48 h lifetime (2.4 h). Renewed "now", the schedule must have moved there.
    const dueIn = (d.renewalDueAt ?? NaN) - Date.now();
    const lifetime = 2 * DAY;
    const earliest = lifetime / 6 - DEFAULT_RENEWAL.jitter * lifetime - 60_000;
    const latest = lifetime / 6 + DEFAULT_RENEWAL.jitter * lifetime;
    assert.ok(dueIn > earliest && dueIn <= latest, `the next renewal is scheduled from the new certificate (due in ${dueIn} ms)`);
  });

  it('renews over its own MQTT session: subscribes to the replies, sends a CSR, switches to the certificate that came back', async () => {
    const { d, events } = await device('mqtt-renew-1', {}, new MqttRenewer(timers, 5000));
    d.start();
    await eventually(() => d.state === 'online', 5000, 'online');
    const first = d.connectedSerial!;
    d.renewNow();
    await eventually(() => d.state === 'online' && d.connectedSerial !== first, 5000, 'on the renewed certificate');
    assert.deepEqual(broker.renewRequests.filter((id) => id === 'mqtt-renew-1'), ['mqtt-renew-1'], 'asked on its own session, once');
    assert.deepEqual(events.renewedVia, ['mqtt']);
    assert.equal(events.commands, 0, 'a renewal reply is not a command');
    assert.deepEqual([events.drops, events.failures], [0, []]);
    assert.equal(broker.admittedSerials.at(-1)!.toLowerCase(), d.connectedSerial!.replace(/:/g, '').toLowerCase());
  });

  it('counts a rejected renewal under the service’s code and stays online on its certificate', async () => {
    const { d, events } = await device('mqtt-renew-2', {}, new MqttRenewer(timers, 5000));
    d.start();
    await eventually(() => d.state === 'online', 5000, 'online');
    const first = d.connectedSerial!;
    broker.renewAnswers.push('device_disabled');
    d.renewNow();
    await eventually(() => events.renewalFailures.length === 1, 5000, 'the refusal');
    assert.deepEqual(events.renewalFailures, ['mqtt:device_disabled']);
    assert.deepEqual([d.state, d.connectedSerial, events.renewals], ['online', first, 0]);
    assert.ok(d.renewalDueAt !== undefined && d.renewalDueAt > Date.now(), 'retried later, with the renewal backoff');
  });

  it('gives up waiting for a renewal reply that never comes (reply_timeout), and stays online', async () => {
    const { d, events } = await device('mqtt-renew-4', {}, new MqttRenewer(timers, 200));
    d.start();
    await eventually(() => d.state === 'online', 5000, 'online');
    broker.renewAnswers.push('silent');
    d.renewNow();
    await eventually(() => events.renewalFailures.length === 1, 5000, 'the timeout');
    assert.deepEqual([events.renewalFailures, d.state], [['mqtt:reply_timeout'], 'online']);
  });

  it('cannot renew over MQTT while offline: counted as offline, and retried later', async () => {
    const { d, events } = await device('mqtt-renew-3', {}, new MqttRenewer(timers, 5000));
    d.renewNow();
    await eventually(() => events.renewalFailures.length === 1, 5000, 'the failure');
    assert.deepEqual(events.renewalFailures, ['mqtt:offline']);
  });
});
