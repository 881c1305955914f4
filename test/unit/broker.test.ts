// The broker core over in-memory streams: races and failures that real sockets cannot
// time reliably.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pino from 'pino';
import { DEFAULT_SHARED_STATE_LIMITS, redisMqttState } from '../../broker/cluster.js';
import type { PeerFacts } from '../../broker/peer.js';
import type { DeviceId, Fingerprint, SerialHex } from '../../registry/ids.js';
import type { AdmissionRecord } from '../../registry/model.js';
import { DEFAULT_BROKER_OPTIONS } from '../../bin/service.js';
import { startRedis } from '../support/cluster.js';
import { memoryBroker } from '../support/memory-broker.js';
import { eventually } from '../support/wait.js';

const fingerprint = 'ef'.repeat(32) as Fingerprint;
const peer: PeerFacts = {
  address: 'memory',
  certificate: {
    serial: '0a0b',
    fingerprint,
    commonName: 'dev-1',
    subject: 'CN=dev-1',
    issuer: 'CN=Issuing',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
  },
};
const record: AdmissionRecord = {
  serial: '0a0b' as SerialHex,
  fingerprint,
  deviceId: 'dev-1' as DeviceId,
  certificateStatus: 'ACTIVE',
  deviceStatus: 'ACTIVE',
  notBefore: peer.certificate!.notBefore,
  notAfter: peer.certificate!.notAfter,
};
const revokedEvent = { type: 'certificate.status', serial: record.serial, fingerprint, deviceId: record.deviceId, caId: 'default', status: 'REVOKED', at: new Date().toISOString() } as const;

describe('DeviceBroker admission races', () => {
  it('refuses a CONNECT whose registry lookup was in flight when the certificate was revoked', async () => {
    // The store answers ACTIVE, but only after the revocation has been published.
    let lookupStarted!: () => void;
    const started = new Promise<void>((resolve) => (lookupStarted = resolve));
    let releaseLookup!: () => void;
    const memory = await memoryBroker({
      admissionRecord: () => {
        lookupStarted();
        return new Promise<AdmissionRecord>((resolve) => (releaseLookup = () => resolve(record)));
      },
    });
    const outcome = memory.connect(peer, { clientId: 'dev-1' });
    await started;
    await memory.bus.publish([revokedEvent]);
    releaseLookup();
    assert.equal((await outcome).returnCode, 5);
    const refusal = await memory.logs.waitFor('refusal', { clientId: 'dev-1' });
    assert.equal(refusal.reason, 'certificate_revoked');
    assert.equal(memory.broker.isConnected('dev-1'), false);
    await memory.close();
  });

  it('closes a live session when its certificate is revoked, and refuses it afterwards', async () => {
    const memory = await memoryBroker({ admissionRecord: () => Promise.resolve(record) });
    const { client, returnCode } = await memory.connect(peer, { clientId: 'dev-1' });
    assert.equal(returnCode, 0);
    await eventually(() => memory.broker.isConnected('dev-1'), 2000, 'session ready');
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    await memory.bus.publish([revokedEvent]);
    await closed;
    const terminated = await memory.logs.waitFor('session_terminated', { deviceId: 'dev-1' });
    assert.equal(terminated.reason, 'certificate_revoked');
    assert.equal((await memory.connect(peer, { clientId: 'dev-1' })).returnCode, 5);
    await memory.close();
  });

  it('answers CONNACK 3 and reason registry_unavailable when the registry fails', async () => {
    const memory = await memoryBroker({ admissionRecord: () => Promise.reject(new Error('SQLITE_IOERR')) });
    const { returnCode } = await memory.connect(peer, { clientId: 'dev-1' });
    assert.equal(returnCode, 3);
    assert.equal((await memory.logs.waitFor('refusal', { clientId: 'dev-1' })).reason, 'registry_unavailable');
    await memory.close();
  });

  it('keeps admitting on a cached verdict while the registry is down', async () => {
    let up = true;
    const memory = await memoryBroker({ admissionRecord: () => (up ? Promise.resolve(record) : Promise.reject(new Error('down'))) });
    const first = await memory.connect(peer, { clientId: 'dev-1' });
    assert.equal(first.returnCode, 0);
    first.client.end(true);
    up = false;
    assert.equal((await memory.connect(peer, { clientId: 'dev-1' })).returnCode, 0);
    await memory.close();
  });
});

describe('DeviceBroker cut off from its events', () => {
  it('admits nobody while events may be missed, and closes a live session revoked meanwhile without waiting for the catch-up', async () => {
    let current: AdmissionRecord = record;
    const unthrottled = { abuse: { ...DEFAULT_BROKER_OPTIONS.abuse, perClientId: { ratePerSecond: 1000, burst: 1000 } } };
    const memory = await memoryBroker({ admissionRecord: () => Promise.resolve(current) }, undefined, unthrottled);
    const first = await memory.connect(peer, { clientId: 'dev-1' });
    assert.equal(first.returnCode, 0); // the ACTIVE verdict is cached now
    await eventually(() => memory.broker.isConnected('dev-1'), 2000, 'session ready');
    const closed = new Promise<void>((resolve) => first.client.once('close', () => resolve()));

    memory.broker.eventsMayBeMissed();
    // The registry still says ACTIVE, but a node that may have missed events admits nobody.
    const refused = await memory.connect(peer, { clientId: 'dev-1', clean: true });
    assert.equal(refused.returnCode, 3);
    assert.equal((await memory.logs.waitFor('refusal', { clientId: 'dev-1' })).reason, 'registry_unavailable');
    assert.equal(memory.broker.isConnected('dev-1'), true, 'the refusal leaves the live session alone');

    // Revoked elsewhere; its event never arrives here (the bus is down). The periodic
    // re-check reads the registry and closes the session while the node is still cut off.
    current = { ...record, certificateStatus: 'REVOKED' };
    await closed;
    assert.equal((await memory.logs.waitFor('session_terminated', { deviceId: 'dev-1' })).reason, 'certificate_revoked');
    assert.equal((await memory.logs.waitFor('sessions_rechecked')).sessionsClosed, 1);

    assert.deepEqual(await memory.broker.resync(), [], 'nothing left for the catch-up to close');
    assert.equal((await memory.connect(peer, { clientId: 'dev-1' })).returnCode, 5);
    await memory.close();
  });

  it('refuses with registry_unavailable while cut off if the registry cannot answer either, though a verdict is cached', async () => {
    let failing = false;
    // Reconnecting at machine speed: no throttling in the way.
    const unthrottled = { abuse: { ...DEFAULT_BROKER_OPTIONS.abuse, perClientId: { ratePerSecond: 1000, burst: 1000 } } };
    const memory = await memoryBroker({ admissionRecord: () => (failing ? Promise.reject(new Error('database down')) : Promise.resolve(record)) }, undefined, unthrottled);
    const first = await memory.connect(peer, { clientId: 'dev-1' });
    assert.equal(first.returnCode, 0);
    first.client.end(true);
    failing = true;
    const cached = await memory.connect(peer, { clientId: 'dev-1' });
    assert.equal(cached.returnCode, 0, 'on the bus, the cached verdict is good within its TTL');
    cached.client.end(true);
    memory.broker.eventsMayBeMissed();
    const unsure = await memory.connect(peer, { clientId: 'dev-1' });
    assert.equal(unsure.returnCode, 3);
    assert.equal((await memory.logs.waitFor('refusal', { reason: 'registry_unavailable' })).clientId, 'dev-1');
    unsure.client.end(true);
    failing = false;
    await memory.broker.resync();
    const fresh = await memory.connect(peer, { clientId: 'dev-1' });
    assert.equal(fresh.returnCode, 0);
    fresh.client.end(true);
    failing = true;
    assert.equal((await memory.connect(peer, { clientId: 'dev-1' })).returnCode, 0, 'caught up: cached verdicts count again');
    await memory.close();
  });
});

describe('DeviceBroker on MQTT state in Redis', () => {
  it('closes a subscriber whose retained messages the MQTT state could not give, and logs it as the broker’s failure, not the device’s', { timeout: 30_000 }, async () => {
    const redis = await startRedis();
    const sharedState = await redisMqttState(redis.url, DEFAULT_SHARED_STATE_LIMITS, pino({ level: 'silent' }));
    const memory = await memoryBroker({ admissionRecord: () => Promise.resolve(record) }, undefined, {}, { sharedState });
    // A retained message Redis holds but that cannot be decoded (0xc1 is no MessagePack
    // type): the read of the SUBSCRIBE's retained messages fails, as it does when Redis goes
    // away mid-read, without waiting out ioredis' retries.
    const raw = new Redis(redis.url);
    try {
      await raw.hset('retained', 'devices/dev-1/commands/config', Buffer.from([0xc1]));
      const { client, returnCode } = await memory.connect(peer, { clientId: 'dev-1' });
      assert.equal(returnCode, 0);
      client.on('error', () => undefined);
      const lost = new Promise<void>((resolve) => client.once('close', () => resolve()));
      client.subscribe('devices/dev-1/commands/config', { qos: 1 });
      await lost;
      const logged = await memory.logs.waitFor('retained_unavailable', { clientId: 'dev-1' });
      assert.ok(logged.err, 'with the cause');
      assert.equal(memory.logs.events('refusal').length, 0, 'not refused as the device’s fault');
      await eventually(() => !memory.broker.isConnected('dev-1'), 2000, 'the session ended');
    } finally {
      raw.disconnect();
      await memory.close();
      await sharedState.close();
      await redis.stop();
    }
  });
});
