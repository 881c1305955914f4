// Renewal's rules: which certificates may renew, the CA policies that bound them, and how a
// renewed certificate's predecessor retires — when its successor is seen, or by the stepped
// clock when the grace period ends. Against SQLite and PostgreSQL.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { renewalRefusal, keyRefusal } from '../../provisioning/renewal.js';
import type { CodedError } from '../../registry/errors.js';
import { InProcessEventBus, type RegistryEvent } from '../../registry/events.js';
import type { DeviceId, Fingerprint, SerialHex } from '../../registry/ids.js';
import type { NewCertificate } from '../../registry/lifecycle.js';
import type { CaPolicy, CertificateRecord, Device } from '../../registry/model.js';
import { DEFAULT_CA_POLICY } from '../../registry/policies.js';
import { Registry } from '../../registry/registry.js';
import { testCa as ca } from '../support/records.js';
import { BACKENDS, type OpenedStore } from '../support/stores.js';

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;
const operator = { kind: 'operator', id: 'admin' } as const;
const broker = { kind: 'broker', id: 'b1' } as const;
let n = 0;

function newCertificate(deviceId: string, extra: Partial<NewCertificate> = {}): NewCertificate {
  const serial = (0x30000 + ++n).toString(16).padStart(32, '0') as SerialHex;
  return {
    serial,
    fingerprint: serial.padEnd(64, 'e') as Fingerprint,
    publicKeySha256: `key-${n}`,
    deviceId: deviceId as DeviceId,
    caId: 'default',
    notBefore: new Date('2026-01-01'),
    notAfter: new Date('2027-06-01'),
    pem: '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n',
    ...extra,
  };
}


const codeOf = (error: CodedError | undefined) => error?.code ?? 'ok';

describe('renewal checks', () => {
  const now = new Date('2026-06-01T00:00:00Z');
  const current = { ...newCertificate('d'), status: 'ACTIVE', createdAt: now, notBefore: new Date('2026-05-01'), notAfter: new Date('2026-05-31') } as CertificateRecord;
  const device: Device = { id: 'd' as DeviceId, status: 'ACTIVE', attributes: {}, gateway: false, createdAt: now, updatedAt: now };
  const policy: CaPolicy = { ...DEFAULT_CA_POLICY };
  const facts = (over: { current?: Partial<CertificateRecord>; device?: Partial<Device>; policy?: Partial<CaPolicy>; now?: Date } = {}) => ({
    current: { ...current, ...over.current },
    device: { ...device, ...over.device },
    policy: { ...policy, ...over.policy },
    now: over.now ?? now,
  });
  const cases: [string, Parameters<typeof facts>[0], string][] = [
    ['a good certificate', { current: { notAfter: new Date('2026-07-01') } }, 'ok'],
    ['a revoked certificate', { current: { status: 'REVOKED', notAfter: new Date('2026-07-01') } }, 'client_certificate_revoked'],
    ['an inactive certificate', { current: { status: 'INACTIVE', notAfter: new Date('2026-07-01') } }, 'client_certificate_inactive'],
    ['a certificate pending activation', { current: { status: 'PENDING_ACTIVATION', notAfter: new Date('2026-07-01') } }, 'client_certificate_inactive'],
    ['a disabled device', { current: { notAfter: new Date('2026-07-01') }, device: { status: 'DISABLED' } }, 'device_disabled'],
    ['a decommissioned device', { current: { notAfter: new Date('2026-07-01') }, device: { status: 'DECOMMISSIONED' } }, 'device_decommissioned'],
    ['a certificate not yet valid', { current: { notBefore: new Date('2026-06-02'), notAfter: new Date('2026-07-01') } }, 'client_certificate_expired'],
    ['an expired certificate, no window (the default)', {}, 'client_certificate_expired'],
    ['an expired certificate inside the window', { policy: { renewalWindowMs: 2 * DAY } }, 'ok'],
    ['an expired certificate just past the window', { policy: { renewalWindowMs: DAY - 1 } }, 'client_certificate_expired'],
    ['an expired certificate exactly at the window’s end', { policy: { renewalWindowMs: DAY } }, 'ok'],
  ];
  for (const [name, over, code] of cases) it(`${name}: ${code}`, () => assert.equal(codeOf(renewalRefusal(facts(over))), code));

  it('refuses the same key only where the policy asks for a new one', () => {
    assert.equal(codeOf(keyRefusal(current, current.publicKeySha256, policy)), 'ok');
    assert.equal(codeOf(keyRefusal(current, current.publicKeySha256, { ...policy, requireNewKey: true })), 'public_key_reused');
    assert.equal(codeOf(keyRefusal(current, 'another-key', { ...policy, requireNewKey: true })), 'ok');
  });
});

for (const backend of BACKENDS) {
  describe(`renewals in the registry on ${backend.name}`, { timeout: 60_000 }, () => {
    let opened: OpenedStore;
    let registry: Registry;
    let events: RegistryEvent[];
    let now: Date;

    beforeEach(async () => {
      opened = await backend.open();
      const bus = new InProcessEventBus();
      events = [];
      bus.subscribe((e) => void events.push(e));
      now = new Date('2026-06-01T12:00:00.000Z');
      registry = new Registry({ store: opened.store, bus, clock: () => now });
      await registry.authorities.record(ca('root'), operator);
      await registry.authorities.record(ca('default', 'root'), operator);
      await registry.lifecycle.createDevice({ id: 'd1' as DeviceId }, operator);
      events.length = 0;
    });
    afterEach(() => opened.dispose());

    async function renewed(graceMs = DAY) {
      const old = await registry.lifecycle.recordCertificate(newCertificate('d1'), operator);
      const fresh = await registry.lifecycle.recordCertificate(newCertificate('d1', { renewedFrom: old.serial, predecessorRetiresAt: new Date(now.getTime() + graceMs) }), { kind: 'device', id: 'd1' });
      events.length = 0;
      return { old, fresh };
    }
    const statusOf = async (serial: SerialHex) => (await registry.lifecycle.certificate(serial))!.status;

    it('keeps both certificates ACTIVE until the new one is seen, then retires the old one once', async () => {
      const { old, fresh } = await renewed();
      assert.deepEqual([await statusOf(old.serial), await statusOf(fresh.serial)], ['ACTIVE', 'ACTIVE']);
      assert.equal((await registry.admissionRecord(fresh.fingerprint))?.renewalPending, true);
      assert.equal(await registry.lifecycle.retirePredecessor(fresh.serial, 'seen', broker), true);
      assert.deepEqual([await statusOf(old.serial), await statusOf(fresh.serial)], ['INACTIVE', 'ACTIVE']);
      assert.deepEqual(events.map((e) => [e.type, 'fingerprint' in e ? e.fingerprint : '', 'status' in e ? e.status : '']), [['certificate.status', old.fingerprint, 'INACTIVE']]);
      assert.equal((await registry.admissionRecord(fresh.fingerprint))?.renewalPending, false);
      // Seen again: nothing left to do, nothing announced.
      events.length = 0;
      assert.equal(await registry.lifecycle.retirePredecessor(fresh.serial, 'seen', broker), false);
      assert.deepEqual(events, []);
      const audit = await registry.auditLog.page({ certificateSerial: old.serial });
      assert.deepEqual(audit.entries.map((e) => [e.actor, e.action]), [['operator:admin', 'certificate.issued'], ['broker:b1', 'certificate.deactivated']]);
      assert.equal((await registry.auditLog.page({ certificateSerial: fresh.serial })).entries[0]?.action, 'certificate.renewed');
    });

    it('retires the old certificate when the grace period ends, on the stepped clock', async () => {
      const { old, fresh } = await renewed(6 * HOUR);
      const system = { kind: 'system', id: 'renewal' } as const;
      now = new Date(now.getTime() + 6 * HOUR - 1);
      assert.equal(await registry.lifecycle.retireOverdue(system, now), 0);
      assert.equal(await statusOf(old.serial), 'ACTIVE');
      now = new Date(now.getTime() + 1);
      assert.equal(await registry.lifecycle.retireOverdue(system, now), 1);
      assert.deepEqual([await statusOf(old.serial), await statusOf(fresh.serial)], ['INACTIVE', 'ACTIVE']);
      assert.equal(await registry.lifecycle.retireOverdue(system, new Date(now.getTime() + DAY)), 0);
    });

    it('leaves a predecessor that was revoked or deactivated meanwhile as it is', async () => {
      const { old, fresh } = await renewed();
      await registry.lifecycle.setCertificateStatus(old.serial, 'REVOKED', operator);
      assert.equal(await registry.lifecycle.retirePredecessor(fresh.serial, 'seen', broker), true);
      assert.equal(await statusOf(old.serial), 'REVOKED');
    });

    it('keeps CA policies within bounds, audited and announced', async () => {
      assert.deepEqual(await registry.policies.get('default'), DEFAULT_CA_POLICY);
      const set = await registry.policies.set('default', { certificateLifetimeMs: 6 * HOUR, renewalWindowMs: 30 * DAY }, operator);
      assert.deepEqual(set, { certificateLifetimeMs: 6 * HOUR, renewalWindowMs: 30 * DAY, renewalGraceMs: DAY, requireNewKey: false });
      assert.deepEqual(await registry.policies.get('default'), set);
      assert.deepEqual(events.map((e) => e.type), ['ca.policy']);
      const refused = async (policy: Partial<CaPolicy>) => registry.policies.set('default', policy, operator).then(() => 'ok', (e: CodedError) => e.code);
      assert.equal(await refused({ certificateLifetimeMs: HOUR - 1 }), 'invalid_ca_policy');
      assert.equal(await refused({ renewalGraceMs: 0 }), 'invalid_ca_policy');
      assert.equal(await refused({ renewalWindowMs: 366 * DAY }), 'invalid_ca_policy');
      assert.equal(await registry.policies.set('nope', {}, operator).then(() => 'ok', (e: CodedError) => e.code), 'ca_not_found');
      assert.equal((await registry.auditLog.page({})).entries.filter((e) => e.action === 'ca.policy_set').length, 1);
    });
  });
}
