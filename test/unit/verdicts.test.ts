import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RegistryUnavailableError, VerdictCache } from '../../broker/verdicts.js';
import type { DeviceId, Fingerprint, SerialHex } from '../../registry/ids.js';
import type { AdmissionRecord } from '../../registry/model.js';

const fp = 'cd'.repeat(32) as Fingerprint;
const active: AdmissionRecord = {
  serial: '01' as SerialHex,
  fingerprint: fp,
  deviceId: 'dev-1' as DeviceId,
  certificateStatus: 'ACTIVE',
  deviceStatus: 'ACTIVE',
  notBefore: new Date(0),
  notAfter: new Date(8e12),
};
const options = { maxEntries: 100, ttlMs: 60_000, unregisteredTtlMs: 1 };

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('VerdictCache', () => {
  it('asks the registry once and then answers from memory', async () => {
    let lookups = 0;
    const cache = new VerdictCache({ admissionRecord: () => (lookups++, Promise.resolve(active)) }, options);
    await cache.standing(fp);
    await cache.standing(fp);
    assert.equal(lookups, 1);
  });

  it('lets a revocation that lands during a lookup win over the stale answer', async () => {
    const lookup = deferred<AdmissionRecord | undefined>();
    let lookups = 0;
    const cache = new VerdictCache(
      { admissionRecord: () => (lookups++ === 0 ? lookup.promise : Promise.resolve({ ...active, certificateStatus: 'REVOKED' })) },
      options,
    );
    const pending = cache.standing(fp);
    cache.apply({ type: 'certificate.status', serial: active.serial, fingerprint: fp, deviceId: active.deviceId, caId: 'default', status: 'REVOKED', at: new Date().toISOString() });
    lookup.resolve(active); // the read that started before the revocation
    const standing = await pending;
    assert.equal(standing.kind === 'registered' && standing.record.certificateStatus, 'REVOKED');
  });

  it('keeps a revoked certificate as a tombstone once it has seen it', async () => {
    let status: AdmissionRecord['certificateStatus'] = 'ACTIVE';
    const cache = new VerdictCache({ admissionRecord: () => Promise.resolve({ ...active, certificateStatus: status }) }, options);
    await cache.standing(fp);
    cache.apply({ type: 'certificate.status', serial: active.serial, fingerprint: fp, deviceId: active.deviceId, caId: 'default', status: 'REVOKED', at: new Date().toISOString() });
    status = 'ACTIVE'; // even if the store were to say otherwise, REVOKED is terminal here
    const standing = await cache.standing(fp);
    assert.equal(standing.kind === 'registered' && standing.record.certificateStatus, 'REVOKED');
  });

  it('forgets a miss when the certificate is created', async () => {
    let record: AdmissionRecord | undefined = undefined;
    const cache = new VerdictCache({ admissionRecord: () => Promise.resolve(record) }, { ...options, unregisteredTtlMs: 60_000 });
    assert.equal((await cache.standing(fp)).kind, 'unregistered');
    record = active;
    assert.equal((await cache.standing(fp)).kind, 'unregistered', 'still remembered');
    cache.apply({ type: 'certificate.created', serial: active.serial, fingerprint: fp, deviceId: active.deviceId, caId: 'default', status: 'ACTIVE', at: new Date().toISOString() });
    assert.equal((await cache.standing(fp)).kind, 'registered');
  });

  it('drops the verdicts of a device whose status changes', async () => {
    let deviceStatus: AdmissionRecord['deviceStatus'] = 'ACTIVE';
    const cache = new VerdictCache({ admissionRecord: () => Promise.resolve({ ...active, deviceStatus }) }, options);
    await cache.standing(fp);
    deviceStatus = 'DISABLED';
    cache.apply({ type: 'device.status', deviceId: active.deviceId, status: 'DISABLED', at: new Date().toISOString() });
    const standing = await cache.standing(fp);
    assert.equal(standing.kind === 'registered' && standing.record.deviceStatus, 'DISABLED');
  });

  it('fails closed with RegistryUnavailableError when the registry throws', async () => {
    const cache = new VerdictCache({ admissionRecord: () => Promise.reject(new Error('disk I/O error')) }, options);
    await assert.rejects(cache.standing(fp), RegistryUnavailableError);
  });
});

describe('VerdictCache during device status changes', () => {
  it('re-reads a lookup that a device event overtook', async () => {
    const first = deferred<AdmissionRecord | undefined>();
    let lookups = 0;
    const cache = new VerdictCache(
      { admissionRecord: () => (lookups++ === 0 ? first.promise : Promise.resolve({ ...active, deviceStatus: 'DISABLED' })) },
      options,
    );
    const pending = cache.standing(fp);
    cache.apply({ type: 'device.status', deviceId: active.deviceId, status: 'DISABLED', at: new Date().toISOString() });
    first.resolve(active);
    const standing = await pending;
    assert.equal(standing.kind === 'registered' && standing.record.deviceStatus, 'DISABLED');
    assert.equal(lookups, 2);
  });
});
