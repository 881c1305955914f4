// The registry's rules, the same assertions against SQLite and against PostgreSQL.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CodedError, RegistryError } from '../../registry/errors.js';
import { InProcessEventBus, type RegistryEvent } from '../../registry/events.js';
import { FleetGraph } from '../../registry/graph.js';
import type { DeviceId, Fingerprint, SerialHex } from '../../registry/ids.js';
import type { NewCertificate } from '../../registry/lifecycle.js';
import type { CertificateRecord, CertificateStatus, DeviceStatus } from '../../registry/model.js';
import { Registry } from '../../registry/registry.js';
import type { KyselyRegistryStore } from '../../registry/store.js';
import { testCa as ca } from '../support/records.js';
import { BACKENDS, type OpenedStore } from '../support/stores.js';

const operator = { kind: 'operator', id: 'admin' } as const;
const DAY = 24 * 60 * 60 * 1000;
let n = 0;

function certificate(deviceId: string, options: { key?: string; caId?: string; notBefore?: Date; notAfter?: Date } = {}): NewCertificate {
  const serial = (0x10000 + ++n).toString(16).padStart(32, '0') as SerialHex;
  return {
    serial,
    fingerprint: serial.padEnd(64, 'f') as Fingerprint,
    publicKeySha256: options.key ?? `key-${n}`,
    deviceId: deviceId as DeviceId,
    caId: options.caId ?? 'default',
    notBefore: options.notBefore ?? new Date('2026-01-01'),
    notAfter: options.notAfter ?? new Date('2027-06-01'),
    pem: '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n',
  };
}


async function codeOf(work: Promise<unknown>): Promise<string> {
  try {
    await work;
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof CodedError, String(error));
    const coded: CodedError = error;
    return coded.code;
  }
}

for (const backend of BACKENDS) {
  describe(`registry on ${backend.name}`, { timeout: 60_000 }, () => {
    let opened: OpenedStore;
    let store: KyselyRegistryStore;
    let registry: Registry;
    let events: RegistryEvent[];
    let now: Date;
    const id = (s: string) => s as DeviceId;

    beforeEach(async () => {
      opened = await backend.open();
      store = opened.store;
      const bus = new InProcessEventBus();
      events = [];
      bus.subscribe((e) => void events.push(e));
      now = new Date('2026-06-01T12:00:00.000Z');
      registry = new Registry({ store, bus, clock: () => now });
      await registry.authorities.record(ca('root'), operator);
      await registry.authorities.record(ca('default', 'root'), operator);
      events.length = 0;
    });
    afterEach(() => opened.dispose());

    describe('devices', () => {
      it('creates a device once; a second create is device_exists', async () => {
        await registry.lifecycle.createDevice({ id: id('d1'), attributes: { line: 'A' } }, operator);
        assert.equal(await codeOf(registry.lifecycle.createDevice({ id: id('d1') }, operator)), 'device_exists');
        const view = await registry.lifecycle.deviceView(id('d1'));
        assert.deepEqual([view.device.status, view.device.attributes, view.device.gateway], ['ACTIVE', { line: 'A' }, false]);
        assert.deepEqual(events.map((e) => e.type), ['device.created']);
      });

      const legal: [DeviceStatus, DeviceStatus][] = [
        ['ACTIVE', 'DISABLED'],
        ['DISABLED', 'ACTIVE'],
        ['ACTIVE', 'DECOMMISSIONED'],
        ['DISABLED', 'DECOMMISSIONED'],
      ];
      for (const [from, to] of legal) {
        it(`moves a device ${from} → ${to}, audited and announced`, async () => {
          await registry.lifecycle.createDevice({ id: id('d2') }, operator);
          if (from !== 'ACTIVE') await registry.lifecycle.setDeviceStatus(id('d2'), from, operator);
          events.length = 0;
          const view = await registry.lifecycle.setDeviceStatus(id('d2'), to, operator, 'because');
          assert.equal(view.device.status, to);
          assert.ok(events.some((e) => e.type === 'device.status' && e.status === to));
          const audit = await registry.auditLog.page({ deviceId: 'd2' });
          assert.equal(audit.entries.at(-1)?.action, `device.${to.toLowerCase()}`);
          assert.equal(audit.entries.at(-1)?.reason, 'because');
        });
      }

      for (const to of ['ACTIVE', 'DISABLED'] as const) {
        it(`refuses DECOMMISSIONED → ${to} with device_decommissioned`, async () => {
          await registry.lifecycle.createDevice({ id: id('d3') }, operator);
          await registry.lifecycle.setDeviceStatus(id('d3'), 'DECOMMISSIONED', operator);
          assert.equal(await codeOf(registry.lifecycle.setDeviceStatus(id('d3'), to, operator)), 'device_decommissioned');
        });
      }

      it('decommissions a device: every certificate revoked; repeating republishes and audits nothing new', async () => {
        await registry.lifecycle.createDevice({ id: id('d4') }, operator);
        const a = await registry.lifecycle.recordCertificate(certificate('d4'), operator);
        await registry.lifecycle.recordCertificate(certificate('d4'), operator);
        events.length = 0;
        const view = await registry.lifecycle.setDeviceStatus(id('d4'), 'DECOMMISSIONED', operator, 'lost');
        assert.deepEqual(view.certificates.map((c) => c.status), ['REVOKED', 'REVOKED']);
        assert.deepEqual(events.map((e) => e.type).sort(), ['certificate.status', 'certificate.status', 'device.status']);
        assert.equal((await registry.admissionRecord(a.fingerprint))?.certificateStatus, 'REVOKED');
        const auditBefore = (await registry.auditLog.page({ limit: 500 })).entries.length;
        events.length = 0;
        await registry.lifecycle.setDeviceStatus(id('d4'), 'DECOMMISSIONED', operator);
        assert.equal(events.length, 3);
        assert.equal((await registry.auditLog.page({ limit: 500 })).entries.length, auditBefore);
        assert.equal(await codeOf(registry.lifecycle.assertEnrollable(id('d4'))), 'device_decommissioned');
        assert.equal(await codeOf(registry.lifecycle.recordCertificate(certificate('d4'), operator)), 'device_decommissioned');
      });

      it('gives a disabled device no new certificate, and its own back when enabled', async () => {
        await registry.lifecycle.createDevice({ id: id('d5') }, operator);
        const cert = await registry.lifecycle.recordCertificate(certificate('d5'), operator);
        await registry.lifecycle.setDeviceStatus(id('d5'), 'DISABLED', operator);
        assert.equal(await codeOf(registry.lifecycle.assertEnrollable(id('d5'))), 'device_disabled');
        assert.equal((await registry.admissionRecord(cert.fingerprint))?.deviceStatus, 'DISABLED');
        await registry.lifecycle.setDeviceStatus(id('d5'), 'ACTIVE', operator);
        assert.equal((await registry.admissionRecord(cert.fingerprint))?.deviceStatus, 'ACTIVE');
        assert.equal((await registry.admissionRecord(cert.fingerprint))?.certificateStatus, 'ACTIVE');
      });
    });

    describe('certificates', () => {
      beforeEach(() => registry.lifecycle.createDevice({ id: id('c1') }, operator));

      it('records a certificate, audits it and announces it', async () => {
        const cert = await registry.lifecycle.recordCertificate(certificate('c1'), operator);
        assert.equal(cert.status, 'ACTIVE');
        assert.ok(events.some((e) => e.type === 'certificate.created' && e.serial === cert.serial && e.caId === 'default'));
        const audit = await registry.auditLog.page({ certificateSerial: cert.serial });
        assert.deepEqual(audit.entries.map((a) => [a.action, a.actor, a.deviceId]), [['certificate.issued', 'operator:admin', 'c1']]);
      });

      const legal: [CertificateStatus, CertificateStatus][] = [
        ['ACTIVE', 'INACTIVE'],
        ['INACTIVE', 'ACTIVE'],
        ['PENDING_ACTIVATION', 'ACTIVE'],
        ['PENDING_ACTIVATION', 'INACTIVE'],
        ['PENDING_ACTIVATION', 'REVOKED'],
        ['ACTIVE', 'REVOKED'],
        ['INACTIVE', 'REVOKED'],
      ];
      for (const [from, to] of legal) {
        it(`moves a certificate ${from} → ${to}`, async () => {
          const cert = await registry.lifecycle.recordCertificate(certificate('c1'), operator, from === 'PENDING_ACTIVATION' ? 'PENDING_ACTIVATION' : 'ACTIVE');
          if (from === 'INACTIVE') await registry.lifecycle.setCertificateStatus(cert.serial, 'INACTIVE', operator);
          events.length = 0;
          const moved = await registry.lifecycle.setCertificateStatus(cert.serial, to, operator, 'why');
          assert.equal(moved.status, to);
          assert.deepEqual(events.map((e) => e.type === 'certificate.status' && e.status), [to]);
          assert.equal(moved.revokedAt !== undefined, to === 'REVOKED');
        });
      }

      for (const to of ['ACTIVE', 'INACTIVE', 'PENDING_ACTIVATION'] as const) {
        it(`refuses REVOKED → ${to} with certificate_revoked`, async () => {
          const cert = await registry.lifecycle.recordCertificate(certificate('c1'), operator);
          await registry.lifecycle.setCertificateStatus(cert.serial, 'REVOKED', operator);
          assert.equal(await codeOf(registry.lifecycle.setCertificateStatus(cert.serial, to, operator)), 'certificate_revoked');
        });
      }

      it('treats a move to the status already held as a no-op, except revocation, which is announced again', async () => {
        const cert = await registry.lifecycle.recordCertificate(certificate('c1'), operator);
        events.length = 0;
        await registry.lifecycle.setCertificateStatus(cert.serial, 'ACTIVE', operator);
        assert.equal(events.length, 0);
        await registry.lifecycle.setCertificateStatus(cert.serial, 'REVOKED', operator, 'keyCompromise');
        await registry.lifecycle.setCertificateStatus(cert.serial, 'REVOKED', operator);
        assert.equal(events.length, 2);
        const audit = await registry.auditLog.page({ certificateSerial: cert.serial });
        assert.deepEqual(audit.entries.map((e) => e.action), ['certificate.issued', 'certificate.revoked']);
        assert.equal((await registry.lifecycle.certificate(cert.serial))?.revocationReason, 'keyCompromise');
      });

      it('refuses a public key that belongs to another device or to a revoked certificate', async () => {
        await registry.lifecycle.createDevice({ id: id('c2') }, operator);
        const mine = await registry.lifecycle.recordCertificate(certificate('c1', { key: 'shared' }), operator);
        assert.equal(await codeOf(registry.lifecycle.recordCertificate(certificate('c2', { key: 'shared' }), operator)), 'public_key_in_use');
        // The same device may certify its key again (a renewal that keeps the key).
        await registry.lifecycle.recordCertificate(certificate('c1', { key: 'shared' }), operator);
        await registry.lifecycle.setCertificateStatus(mine.serial, 'REVOKED', operator);
        assert.equal(await codeOf(registry.lifecycle.recordCertificate(certificate('c1', { key: 'shared' }), operator)), 'public_key_in_use');
      });

      it('records a group of certificates in one change, refusing each bad one on its own', async () => {
        await registry.lifecycle.createDevice({ id: id('g-a') }, operator);
        await registry.lifecycle.createDevice({ id: id('g-b') }, operator);
        await registry.lifecycle.createDevice({ id: id('g-off') }, operator);
        await registry.lifecycle.setDeviceStatus(id('g-off'), 'DISABLED', operator);
        await registry.authorities.record(ca('gone', 'root', { status: 'REVOKED' }), operator);
        const events: RegistryEvent[] = [];
        registry.bus.subscribe((e) => void events.push(e));

        const outcomes = await registry.lifecycle.recordCertificates(
          [
            certificate('g-a', { key: 'ka' }),
            certificate('nobody'),
            certificate('g-off'),
            certificate('g-b', { caId: 'gone' }),
            certificate('g-b', { key: 'ka' }), // g-a's key, taken earlier in the same group
            certificate('g-b', { caId: 'nowhere' }),
            certificate('g-b'),
          ],
          operator,
        );
        const codes = outcomes.map((o) => (o instanceof RegistryError ? o.code : o.status));
        assert.deepEqual(codes, ['ACTIVE', 'device_not_found', 'device_disabled', 'ca_revoked', 'public_key_in_use', 'ca_not_found', 'ACTIVE']);
        const recorded = outcomes.filter((o): o is CertificateRecord => !(o instanceof RegistryError));
        for (const r of recorded) assert.equal((await registry.lifecycle.certificate(r.serial))?.status, 'ACTIVE');
        assert.deepEqual(
          events.filter((e) => e.type === 'certificate.created').map((e) => e.type === 'certificate.created' && e.serial),
          recorded.map((r) => r.serial),
        );
        const audited = await registry.auditLog.page({ deviceId: 'g-b' });
        assert.deepEqual(audited.entries.filter((e) => e.action === 'certificate.issued').map((e) => e.certificateSerial), [recorded[1]!.serial]);
      });

      it('reports unknown devices and certificates with their codes', async () => {
        assert.equal(await codeOf(registry.lifecycle.deviceView(id('nobody'))), 'device_not_found');
        assert.equal(await codeOf(registry.lifecycle.setDeviceStatus(id('nobody'), 'DISABLED', operator)), 'device_not_found');
        assert.equal(await codeOf(registry.lifecycle.setCertificateStatus('ffff' as SerialHex, 'REVOKED', operator)), 'certificate_not_found');
      });
    });

    describe('CAs', () => {
      it('revokes a CA with everything below it, in one change, and lists the CA on its parent’s CRL', async () => {
        const a = await registry.authorities.record(ca('a', 'root'), operator);
        await registry.authorities.record(ca('b', 'a'), operator);
        await registry.lifecycle.createDevice({ id: id('x') }, operator);
        await registry.lifecycle.createDevice({ id: id('y') }, operator);
        const underA = await registry.lifecycle.recordCertificate(certificate('x', { caId: 'a' }), operator);
        const underB = await registry.lifecycle.recordCertificate(certificate('y', { caId: 'b' }), operator);
        const elsewhere = await registry.lifecycle.recordCertificate(certificate('y', { caId: 'default' }), operator);
        events.length = 0;

        const result = await registry.authorities.revoke('a', operator, 'cACompromise');
        assert.deepEqual([...result.cas].sort(), ['a', 'b']);
        assert.equal(result.certificates, 2);
        for (const c of [underA, underB]) assert.equal((await registry.lifecycle.certificate(c.serial))?.status, 'REVOKED');
        assert.equal((await registry.lifecycle.certificate(elsewhere.serial))?.status, 'ACTIVE');
        assert.deepEqual(events.filter((e) => e.type === 'ca.status').map((e) => e.type === 'ca.status' && e.caId).sort(), ['a', 'b']);
        assert.equal(events.filter((e) => e.type === 'certificate.status').length, 2);
        assert.deepEqual((await registry.authorities.crlEntries('root')).map((e) => e.serial), [a.serial]);
        assert.deepEqual((await registry.authorities.crlEntries('a')).map((e) => e.serial).sort(), [underA.serial, (await registry.authorities.get('b')).serial].sort());
        const audit = await registry.auditLog.page({ certificateSerial: underB.serial });
        assert.deepEqual(audit.entries.at(-1)?.details.cascadeFrom, 'a');
        assert.equal(await codeOf(registry.authorities.revoke('root', operator)), 'ca_is_root');
        assert.equal(await codeOf(registry.authorities.revoke('nope', operator)), 'ca_not_found');
      });

      it('consumes a registration code once, and not after it expires', async () => {
        const { code } = await registry.authorities.issueRegistrationCode(operator);
        await registry.authorities.record(ca('ext-1', undefined, { external: true, unknownCertificates: 'refuse' }), operator, code);
        assert.equal(await codeOf(registry.authorities.record(ca('ext-2', undefined, { external: true }), operator, code)), 'registration_code_invalid');
        const late = await registry.authorities.issueRegistrationCode(operator);
        now = new Date(now.getTime() + 2 * 60 * 60 * 1000);
        assert.equal(await codeOf(registry.authorities.record(ca('ext-3', undefined, { external: true }), operator, late.code)), 'registration_code_invalid');
        assert.equal(await codeOf(registry.authorities.record(ca('ext-1'), operator)), 'ca_exists');
      });

      const unknown = (cn: string, key = `jit-key-${cn}`) => {
        const c = certificate(cn, { key });
        return { serial: c.serial, fingerprint: c.fingerprint, publicKeySha256: c.publicKeySha256, commonName: cn, notBefore: c.notBefore, notAfter: c.notAfter, pem: c.pem };
      };
      const policies = [
        ['refuse', { outcome: 'refused', why: 'policy' }, undefined],
        ['register-pending', { outcome: 'registered', status: 'PENDING_ACTIVATION', deviceId: 'jit-dev' }, 'PENDING_ACTIVATION'],
        ['register-active', { outcome: 'registered', status: 'ACTIVE', deviceId: 'jit-dev' }, 'ACTIVE'],
      ] as const;
      for (const [policy, expected, status] of policies) {
        it(`registers an unknown certificate just in time per policy ${policy}, audited`, async () => {
          const external = await registry.authorities.record(ca('byo', undefined, { external: true, unknownCertificates: policy }), operator);
          const cert = unknown('jit-dev');
          assert.deepEqual(await registry.authorities.registerUnknown(external.id, cert, { kind: 'broker', id: 'b1' }), expected);
          assert.equal((await registry.admissionRecord(cert.fingerprint))?.certificateStatus, status);
          const audit = await registry.auditLog.page({ certificateSerial: cert.serial });
          assert.equal(audit.entries.at(-1)?.action, policy === 'refuse' ? 'certificate.jit_refused' : 'certificate.jit_registered');
          assert.equal(audit.entries.at(-1)?.actor, 'broker:b1');
        });
      }

      it('refuses just-in-time registration onto a device that holds another CA’s certificates', async () => {
        const external = await registry.authorities.record(ca('byo3', undefined, { external: true, unknownCertificates: 'register-active' }), operator);
        // Enrolled through this service: an operator's CA may not mint a second identity for it.
        await registry.lifecycle.createDevice({ id: id('ours') }, operator);
        await registry.lifecycle.recordCertificate(certificate('ours'), operator);
        const outcome = await registry.authorities.registerUnknown(external.id, unknown('ours'), operator);
        assert.deepEqual(outcome, { outcome: 'refused', why: 'device_of_another_ca' });
        assert.equal((await registry.lifecycle.deviceView(id('ours'))).certificates.length, 1);
        // Created for the operator's CA ahead of time, or registered by it before: fine.
        await registry.lifecycle.createDevice({ id: id('waiting') }, operator);
        assert.equal((await registry.authorities.registerUnknown(external.id, unknown('waiting'), operator)).outcome, 'registered');
        assert.equal((await registry.authorities.registerUnknown(external.id, unknown('waiting', 'jit-key-waiting-2'), operator)).outcome, 'registered');
      });

      it('refuses just-in-time registration for a decommissioned device or a revoked CA', async () => {
        const external = await registry.authorities.record(ca('byo2', undefined, { external: true, unknownCertificates: 'register-active' }), operator);
        await registry.lifecycle.createDevice({ id: id('gone') }, operator);
        await registry.lifecycle.setDeviceStatus(id('gone'), 'DECOMMISSIONED', operator);
        assert.deepEqual(await registry.authorities.registerUnknown(external.id, unknown('gone'), operator), { outcome: 'refused', why: 'device_decommissioned' });
        assert.deepEqual(await registry.authorities.registerUnknown(external.id, unknown('bad/id'), operator), { outcome: 'refused', why: 'invalid_device_id' });
        await registry.authorities.revoke('byo2', operator);
        assert.deepEqual(await registry.authorities.registerUnknown(external.id, unknown('late'), operator), { outcome: 'refused', why: 'ca_revoked' });
      });
    });

    describe('groups and gateways', () => {
      beforeEach(async () => {
        for (const d of ['gw', 'child-1', 'child-2', 'm1']) await registry.lifecycle.createDevice({ id: id(d), gateway: d === 'gw' }, operator);
      });

      it('creates groups with validated policies and reports a device’s access', async () => {
        await registry.groups.create({ id: 'fw', policy: { publish: ['fleet/${deviceId}/status'], subscribe: ['fleet/firmware/#'] } }, operator);
        assert.equal(await codeOf(registry.groups.create({ id: 'fw' }, operator)), 'group_exists');
        assert.equal(await codeOf(registry.groups.create({ id: 'bad', policy: { publish: ['a/#/b'], subscribe: [] } }, operator)), 'invalid_policy');
        assert.equal(await codeOf(registry.groups.create({ id: 'bad2', policy: { publish: ['x/${clientId}'], subscribe: [] } }, operator)), 'invalid_policy');
        await registry.groups.setMembership('fw', id('m1'), true, operator);
        await registry.groups.setMembership('fw', id('m1'), true, operator); // idempotent
        assert.deepEqual((await registry.groups.view('fw')).members, ['m1']);
        const access = await registry.groups.accessOf(id('m1'));
        assert.deepEqual(access.groups.map((g) => g.id), ['fw']);
        await registry.groups.setMembership('fw', id('m1'), false, operator);
        assert.deepEqual((await registry.groups.accessOf(id('m1'))).groups, []);
        assert.deepEqual(events.filter((e) => e.type === 'group.membership').map((e) => e.type === 'group.membership' && e.member), [true, false]);
        assert.equal(await codeOf(registry.groups.setMembership('nope', id('m1'), true, operator)), 'group_not_found');
      });

      it('lets a gateway speak for children, refusing non-gateways and cycles', async () => {
        await registry.groups.setParent(id('child-1'), id('gw'), operator);
        await registry.groups.setParent(id('child-2'), id('gw'), operator);
        assert.deepEqual(await registry.groups.children(id('gw')), ['child-1', 'child-2']);
        assert.deepEqual((await registry.groups.accessOf(id('gw'))).children, ['child-1', 'child-2']);
        assert.equal(await codeOf(registry.groups.setParent(id('m1'), id('child-1'), operator)), 'not_a_gateway');
        await registry.groups.setGateway(id('child-1'), true, operator);
        assert.equal(await codeOf(registry.groups.setParent(id('gw'), id('child-1'), operator)), 'gateway_cycle');
        assert.equal(await codeOf(registry.groups.setGateway(id('gw'), false, operator)), 'illegal_transition');
        await registry.groups.setParent(id('child-2'), undefined, operator);
        assert.deepEqual(await registry.groups.children(id('gw')), ['child-1']);
        const moves = events.filter((e) => e.type === 'device.topology');
        assert.ok(moves.length >= 3);
      });
    });

    describe('audit log and reports', () => {
      it('filters by device, certificate, actor and time, a page at a time', async () => {
        await registry.lifecycle.createDevice({ id: id('a1') }, operator);
        now = new Date(now.getTime() + 1000);
        await registry.lifecycle.createDevice({ id: id('a2') }, { kind: 'system', id: 'batch' });
        const cert = await registry.lifecycle.recordCertificate(certificate('a1'), operator);
        await registry.lifecycle.setCertificateStatus(cert.serial, 'INACTIVE', operator);
        assert.deepEqual((await registry.auditLog.page({ deviceId: 'a1' })).entries.map((e) => e.action), ['device.created', 'certificate.issued', 'certificate.deactivated']);
        assert.deepEqual((await registry.auditLog.page({ certificateSerial: cert.serial })).entries.map((e) => e.action), ['certificate.issued', 'certificate.deactivated']);
        assert.deepEqual((await registry.auditLog.page({ actor: 'system:batch' })).entries.map((e) => e.subjectId), ['a2']);
        assert.equal((await registry.auditLog.page({ since: now, deviceId: 'a1' })).entries.length, 2);
        const first = await registry.auditLog.page({ limit: 2 });
        assert.equal(first.entries.length, 2);
        const second = await registry.auditLog.page({ limit: 2, afterId: first.next });
        assert.ok(second.entries[0]!.id > first.entries[1]!.id);
      });

      it('keeps the audit log append-only at the database level', async () => {
        await registry.lifecycle.createDevice({ id: id('a3') }, operator);
        // Another client on the same database, as an operator with a SQL shell would be.
        await assert.rejects(opened.rawSql("UPDATE audit SET actor = 'someone else'"), /append-only/);
        await assert.rejects(opened.rawSql('DELETE FROM audit'), /append-only/);
        assert.equal((await registry.auditLog.page({ deviceId: 'a3' })).entries[0]?.actor, 'operator:admin');
      });

      it('reports expiring, old, badly-rooted certificates and the broker’s sightings', async () => {
        await registry.lifecycle.createDevice({ id: id('r1') }, operator);
        const soon = await registry.lifecycle.recordCertificate(certificate('r1', { notAfter: new Date(now.getTime() + 10 * DAY) }), operator);
        const old = await registry.lifecycle.recordCertificate(certificate('r1', { notBefore: new Date(now.getTime() - 400 * DAY) }), operator);
        const fine = await registry.lifecycle.recordCertificate(certificate('r1', { notBefore: new Date(now.getTime() - DAY) }), operator);
        // An ACTIVE certificate under a revoked CA can only come from outside the rules
        // (a restore, an import): insert one directly to see the report catch it.
        await registry.authorities.record(ca('dead', 'root', { status: 'REVOKED' }), operator);
        const orphan = { ...certificate('r1', { caId: 'dead' }), status: 'ACTIVE' as const, createdAt: now };
        await store.certificates.insert(orphan);
        await registry.recordSighting({ kind: 'shared_certificate', fingerprint: fine.fingerprint, deviceId: 'r1', details: { peers: ['10.0.0.1:1', '10.0.0.2:2'] } });
        await registry.recordSighting({ kind: 'client_id_conflict', clientId: 'r2', deviceId: 'r1', details: {} });

        const report = await registry.reports.fleet(30);
        assert.ok(report.expiring.some((c) => c.serial === soon.serial));
        assert.ok(!report.expiring.some((c) => c.serial === fine.serial));
        assert.deepEqual(report.older.map((c) => c.serial), [old.serial]);
        assert.deepEqual(report.underBadCa.map((c) => [c.serial, c.problem]), [[orphan.serial, 'ca_revoked']]);
        assert.deepEqual(report.sharedCertificates.map((s) => s.fingerprint), [fine.fingerprint]);
        assert.deepEqual(report.clientIdConflicts.map((s) => s.clientId), ['r2']);
      });
    });

    describe('fleet graph', () => {
      it('is built from the store and kept in step by events, to the same answers', async () => {
        const live = await FleetGraph.build(store);
        registry.bus.subscribe((e) => live.apply(e));
        await registry.authorities.record(ca('g1', 'root'), operator);
        await registry.authorities.record(ca('g2', 'g1'), operator);
        for (const d of ['p', 'q', 'gw2']) await registry.lifecycle.createDevice({ id: id(d), gateway: d === 'gw2' }, operator);
        const pc = await registry.lifecycle.recordCertificate(certificate('p', { caId: 'g1' }), operator);
        await registry.lifecycle.recordCertificate(certificate('q', { caId: 'g2' }), operator);
        await registry.lifecycle.recordCertificate(certificate('q', { caId: 'g2' }), operator);
        await registry.lifecycle.setCertificateStatus(pc.serial, 'REVOKED', operator);
        await registry.groups.create({ id: 'grp' }, operator);
        await registry.groups.setMembership('grp', id('p'), true, operator);
        await registry.groups.setParent(id('q'), id('gw2'), operator);

        const rebuilt = await FleetGraph.build(store);
        for (const graph of [live, rebuilt]) {
          const radius = graph.blastRadius('g1')!;
          assert.deepEqual([...radius.cas].sort(), ['g1', 'g2']);
          assert.equal(radius.certificates.total, 3);
          assert.deepEqual(radius.certificates.byStatus, { REVOKED: 1, ACTIVE: 2 });
          assert.deepEqual([...radius.devices.ids].sort(), ['p', 'q']);
          assert.deepEqual(graph.members('grp'), ['p']);
          assert.deepEqual(graph.children('gw2'), ['q']);
          // A CONNECT asks only this: no gateway and no group means its own namespace alone.
          assert.equal(graph.hasNoGrants('q'), true, 'a child is granted nothing itself');
          assert.equal(graph.hasNoGrants('p'), false, 'a group member');
          assert.equal(graph.hasNoGrants('gw2'), false, 'a gateway');
          assert.equal(graph.hasNoGrants('unknown'), undefined, 'not known: the store decides');
        }
        assert.deepEqual(live.size, rebuilt.size);
        assert.equal(live.blastRadius('nope'), undefined);

        // Kept in step: leaving the group and turning into a gateway move the answer at once.
        await registry.groups.setMembership('grp', id('p'), false, operator);
        assert.equal(live.hasNoGrants('p'), true);
        await registry.groups.setGateway(id('q'), true, operator);
        assert.equal(live.hasNoGrants('q'), false);
      });
    });

    it('rolls back a failed change whole', async () => {
      await registry.lifecycle.createDevice({ id: id('t1') }, operator);
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.devices.setStatus(id('t1'), 'DISABLED', now);
          throw new Error('crash in the middle');
        }),
      );
      assert.equal((await registry.lifecycle.deviceView(id('t1'))).device.status, 'ACTIVE');
    });
  });
}

describe('registry on PostgreSQL, two installations in one database', { timeout: 60_000 }, () => {
  it('migrates each in its own schema and keeps them apart', async () => {
    const postgres = BACKENDS.find((b) => b.name === 'PostgreSQL')!;
    // The first one's migration tables sit in a neighbouring schema while the second migrates.
    const first = await postgres.open();
    try {
      const second = await postgres.open();
      try {
        const clock = () => new Date('2026-06-01T12:00:00.000Z');
        const one = new Registry({ store: first.store, bus: new InProcessEventBus(), clock });
        const two = new Registry({ store: second.store, bus: new InProcessEventBus(), clock });
        await one.lifecycle.createDevice({ id: 'only-in-one' as DeviceId }, operator);
        assert.equal(await codeOf(two.lifecycle.deviceView('only-in-one' as DeviceId)), 'device_not_found');
        await two.lifecycle.createDevice({ id: 'only-in-one' as DeviceId }, operator);
      } finally {
        await second.dispose();
      }
    } finally {
      await first.dispose();
    }
  });
});
