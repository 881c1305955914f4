// The registry's claim batches and issuing-CA rotation, the same assertions against SQLite and
// against PostgreSQL.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { checkTemplate, renderBinding } from '../../provisioning/claims/template.js';
import { InProcessEventBus, type RegistryEvent } from '../../registry/events.js';
import type { DeviceId, Fingerprint, SerialHex } from '../../registry/ids.js';
import type { NewCertificate } from '../../registry/lifecycle.js';
import type { CaRecord, ClaimBatch } from '../../registry/model.js';
import { Registry } from '../../registry/registry.js';
import { BACKENDS, type OpenedStore } from '../support/stores.js';

const operator = { kind: 'operator', id: 'admin' } as const;
const claimant = { kind: 'claim', id: 'line-1/n' } as const;
const NOW = new Date('2030-01-01T00:00:00Z');
let n = 0;
const hex = (prefix: number) => (prefix + ++n).toString(16).padStart(32, '0');

function ca(id: string, parentId?: string): CaRecord {
  return { id, name: id, parentId, subject: `CN=${id}`, serial: hex(0x30000) as SerialHex, keyId: id, pem: `-----BEGIN CERTIFICATE-----\n${id}\n-----END CERTIFICATE-----`, notBefore: NOW, notAfter: new Date('2035-01-01'), status: 'ACTIVE', external: false, createdAt: NOW };
}

function batch(id: string, key = `claim-key-${id}`): ClaimBatch {
  const serial = hex(0x40000);
  return {
    id,
    status: 'ACTIVE',
    template: checkTemplate({ deviceId: 'sensor-${Serial}', parameters: { Serial: { pattern: '[0-9]+' } }, groups: ['sensors'] }),
    rateLimit: { perSecond: 10, burst: 20 },
    caId: 'default',
    serial: serial as SerialHex,
    fingerprint: serial.padEnd(64, 'c') as Fingerprint,
    publicKeySha256: key,
    pem: 'PEM',
    notBefore: NOW,
    notAfter: new Date('2030-02-01'),
    createdAt: NOW,
  };
}

function certificate(deviceId: string, key: string): NewCertificate {
  const serial = hex(0x50000) as SerialHex;
  return { serial, fingerprint: serial.padEnd(64, 'f') as Fingerprint, publicKeySha256: key, deviceId: deviceId as DeviceId, caId: 'default', notBefore: NOW, notAfter: new Date('2030-01-31'), pem: 'PEM' };
}

for (const backend of BACKENDS) {
  describe(`claims and rotation in the registry (${backend.name})`, () => {
    let opened: OpenedStore;
    let registry: Registry;
    let events: RegistryEvent[];
    beforeEach(async () => {
      opened = await backend.open();
      const bus = new InProcessEventBus();
      events = [];
      bus.subscribe((e) => void events.push(e));
      registry = new Registry({ store: opened.store, bus, clock: () => NOW });
      await registry.authorities.record(ca('root'), operator);
      await registry.authorities.record(ca('default', 'root'), operator);
      await registry.groups.create({ id: 'sensors' }, operator);
      await registry.claims.create(batch('line-1'), operator);
    });
    afterEach(() => opened.dispose());

    const issue = async (serialNo: string, key: string) => {
      const binding = renderBinding((await registry.claims.get('line-1')).template, { Serial: serialNo });
      return registry.claims.recordIssued('line-1', certificate(binding.deviceId, key), binding, claimant);
    };

    it('records a claim PENDING_ACTIVATION, then binds and activates it on register', async () => {
      const pending = await issue('17', 'k-17');
      assert.deepEqual([pending.deviceId, pending.status], ['sensor-17', 'PENDING_ACTIVATION']);
      const { certificate: active, binding } = await registry.claims.register('line-1', 'sensor-17' as DeviceId, pending.serial, claimant);
      assert.equal(active.status, 'ACTIVE');
      assert.deepEqual(binding.groups, ['sensors']);
      assert.deepEqual((await registry.lifecycle.deviceView('sensor-17' as DeviceId)).groups, ['sensors']);
      assert.deepEqual(await registry.claims.counts('line-1'), { issued: 1, registered: 1 });
      await assert.rejects(registry.claims.register('line-1', 'sensor-17' as DeviceId, pending.serial, claimant), { code: 'claim_already_registered' });
      assert.ok(events.some((e) => e.type === 'certificate.status' && e.status === 'ACTIVE' && e.serial === pending.serial));
    });

    it('refuses a key certified anywhere, a device it did not leave pending, and bindings it did not make', async () => {
      await issue('18', 'k-18');
      await assert.rejects(issue('19', 'k-18'), { code: 'public_key_in_use' });
      await assert.rejects(issue('19', 'claim-key-line-1'), { code: 'public_key_in_use' });
      await registry.lifecycle.createDevice({ id: 'sensor-20' as DeviceId }, operator);
      await assert.rejects(issue('20', 'k-20'), { code: 'claim_device_exists' });
      await assert.rejects(registry.claims.register('line-1', 'sensor-18' as DeviceId, 'ab'.repeat(16) as SerialHex, claimant), { code: 'claim_binding_unknown' });
    });

    it('supersedes an unregistered claim of the same device, and stops issuing once the batch is revoked', async () => {
      const first = await issue('21', 'k-21a');
      const second = await issue('21', 'k-21b');
      assert.equal((await registry.lifecycle.certificate(first.serial))?.status, 'REVOKED');
      assert.equal((await registry.lifecycle.certificate(second.serial))?.status, 'PENDING_ACTIVATION');
      const revoked = await registry.claims.revoke('line-1', operator, 'keyCompromise');
      assert.equal(revoked.status, 'REVOKED');
      await assert.rejects(issue('22', 'k-22'), { code: 'claim_batch_revoked' });
      await assert.rejects(registry.claims.register('line-1', 'sensor-21' as DeviceId, second.serial, claimant), { code: 'claim_batch_revoked' });
      const crl = await registry.authorities.crlEntries('default');
      assert.ok(crl.some((e) => e.serial === revoked.serial), 'the claim certificate is on its CA’s CRL');
      assert.ok(events.some((e) => e.type === 'claim_batch.status' && e.status === 'REVOKED'));
    });

    it('moves issuing CAs through their slots, each step once, and retires only a superseded one', async () => {
      const slots = await registry.rotation.adoptFirst('default', operator);
      assert.deepEqual([slots.current.caId, slots.current.generation, slots.next], ['default', 1, undefined]);
      await assert.rejects(registry.rotation.activateNext(operator), { code: 'illegal_transition' });
      await registry.rotation.prepare(ca('issuing-2', 'root'), operator);
      await assert.rejects(registry.rotation.prepare(ca('issuing-3', 'root'), operator), { code: 'illegal_transition' });
      await assert.rejects(registry.rotation.retire('default', 'no_dependents', operator), { code: 'illegal_transition' });
      const active = await registry.rotation.activateNext(operator);
      assert.deepEqual([active.current.caId, active.current.generation, active.old.map((o) => o.caId)], ['issuing-2', 2, ['default']]);
      assert.equal(await registry.rotation.dependents('default', NOW), 1, 'the live claim batch still needs it');
      await registry.claims.revoke('line-1', operator);
      assert.equal(await registry.rotation.dependents('default', NOW), 0);
      await registry.rotation.retire('default', 'no_dependents', operator);
      assert.equal((await registry.authorities.get('default')).status, 'RETIRED');
      assert.deepEqual((await registry.rotation.slots())?.retired.map((r) => r.caId), ['default']);
    });
  });
}

describe('claim templates', () => {
  const template = checkTemplate({ deviceId: 'gw-${Site}-${Serial}', parameters: { Site: { pattern: '[a-z]{3}' }, Serial: {}, Rev: { required: false } }, attributes: { site: '${Site}', hw: { rev: '${Rev}' }, tags: ['${Rev}', 'fixed'] } });

  it('renders the device and leaves out attributes naming an absent optional parameter', () => {
    assert.deepEqual(renderBinding(template, { Site: 'ber', Serial: '9' }), { deviceId: 'gw-ber-9', parameters: { Site: 'ber', Serial: '9' }, attributes: { site: 'ber', hw: {}, tags: ['fixed'] }, groups: [] });
    assert.deepEqual(renderBinding(template, { Site: 'ber', Serial: '9', Rev: 'B' }).attributes, { site: 'ber', hw: { rev: 'B' }, tags: ['B', 'fixed'] });
  });

  it('refuses parameters that do not fit: a pattern missed, one unknown or missing, a value that is no string, an id that is no device id', () => {
    for (const given of [{ Site: 'BER', Serial: '9' }, { Site: 'ber', Serial: '9', X: '1' }, { Site: 'ber' }, { Site: 'ber', Serial: 9 }, { Site: 'ber', Serial: 'a/b' }]) {
      assert.throws(() => renderBinding(template, given), { code: 'claim_parameters_invalid' }, JSON.stringify(given));
    }
  });

  it('refuses a template whose device id names nothing, an optional or undeclared parameter, or a bad pattern', () => {
    const bads: Parameters<typeof checkTemplate>[0][] = [
      { deviceId: 'fixed', parameters: {} },
      { deviceId: 'x-${A}', parameters: { A: { required: false } } },
      { deviceId: 'x-${B}', parameters: { A: {} } },
      { deviceId: 'x-${A}', parameters: { A: { pattern: '(' } } },
      { deviceId: 'x y-${A}', parameters: { A: {} } },
      { deviceId: 'x-${A}', parameters: { A: {} }, attributes: { a: '${C}' } },
    ];
    for (const bad of bads) {
      assert.throws(() => checkTemplate(bad), { code: 'template_invalid' }, JSON.stringify(bad));
    }
  });
});
