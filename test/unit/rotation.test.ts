// Issuing-CA rotation driven by a fake clock stepped across each threshold, over a real
// registry (a SQLite file), a real data directory and real enrollment.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { Registry as MetricsRegistry } from 'prom-client';
import { dataLayout, initDataDir, recordInitialState } from '../../bin/data-dir.js';
import { CaKeyring } from '../../provisioning/pki/keyring.js';
import { x509 } from '../../provisioning/pki/x509.js';
import { CaRotator, successorName, thresholds } from '../../provisioning/rotation.js';
import { Provisioning } from '../../provisioning/service.js';
import { trustBundles } from '../../provisioning/trust.js';
import { InProcessEventBus } from '../../registry/events.js';
import type { DeviceId } from '../../registry/ids.js';
import { Registry } from '../../registry/registry.js';
import { openSqliteStore } from '../../registry/sqlite.js';
import type { KyselyRegistryStore } from '../../registry/store.js';
import { ecKeyWithCsr } from '../support/keys.js';

const DAY = 24 * 60 * 60 * 1000;
const LIFETIME = 60 * DAY;
const operator = { kind: 'operator', id: 'admin' } as const;

describe('issuing-CA rotation on a stepped clock', () => {
  let dir: string;
  let store: KyselyRegistryStore;
  let registry: Registry;
  let rotator: CaRotator;
  let provisioning: Provisioning;
  let metrics: MetricsRegistry;
  let now = Date.parse('2030-01-01T00:00:00Z');
  const clock = () => new Date(now);
  const stepTo = (t: Date, by = 1000) => (now = t.getTime() + by);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rotation-'));
    const layout = dataLayout(dir);
    await initDataDir(dir, clock, { issuingLifetimeMs: LIFETIME });
    store = await openSqliteStore(layout.registry);
    registry = new Registry({ store, bus: new InProcessEventBus(), clock });
    await recordInitialState(registry, layout, clock);
    const keyring = await CaKeyring.load(layout.pki, await registry.authorities.list());
    const log = pino({ level: 'silent' }, new Writable({ write: (_c, _e, done) => done() }));
    metrics = new MetricsRegistry();
    rotator = new CaRotator({ rotation: registry.rotation, cas: registry.authorities, keyring, clock, log, metrics, crlUrl: (id) => `https://localhost/v1/cas/${id}/crl` });
    registry.bus.subscribe((event) => rotator.apply(event));
    provisioning = new Provisioning({ certificateLifetimeMs: 30 * DAY, backdateMs: 60_000, publicUrl: () => 'https://localhost' }, { registry, keyring, issuing: rotator, clock, log });
    await rotator.start();
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const ca = (id: string) => registry.authorities.get(id);
  const due = async () => thresholds(await ca(rotator.current()));
  let devices = 0;
  let prepared = 2;
  async function enroll(): Promise<{ ca: string; serial: string }> {
    const id = `meter-${++devices}` as DeviceId;
    await registry.lifecycle.createDevice({ id }, operator);
    const { record } = await provisioning.enroll(id, (await ecKeyWithCsr()).csrPem, operator);
    return { ca: record.caId, serial: record.serial };
  }
  const actions = async (caId: string) => (await registry.auditLog.page({ limit: 500 })).entries.filter((e) => e.subjectId === caId && e.subjectType === 'ca').map((e) => e.action);

  it('adopts the first issuing CA as the current slot, with nothing prepared', () => {
    assert.equal(rotator.current(), 'default');
    assert.equal(rotator.slots.next, undefined);
    assert.equal(rotator.slots.current.generation, 1);
  });

  it('does nothing before half of the current CA’s lifetime', async () => {
    stepTo((await due()).prepareAt, -1000);
    assert.deepEqual(await rotator.step(), []);
    assert.equal(rotator.slots.next, undefined);
  });

  it('prepares the next CA at half-way: trusted and in the bundle, signing nothing yet', async () => {
    const { prepareAt } = await due();
    stepTo(prepareAt);
    assert.deepEqual(await rotator.step(), [{ step: 'prepared', caId: 'issuing-2' }]);
    assert.equal(rotator.slots.next?.caId, 'issuing-2');
    assert.equal(rotator.current(), 'default');

    const next = await ca('issuing-2');
    const current = await ca('default');
    const cert = new x509.X509Certificate(next.pem);
    assert.equal(next.parentId, 'root');
    assert.equal(cert.getExtension(x509.BasicConstraintsExtension)?.pathLength, 0);
    assert.equal(next.notAfter.getTime() - next.notBefore.getTime(), current.notAfter.getTime() - current.notBefore.getTime());
    assert.equal(/CN=([^,]+)/.exec(next.subject)?.[1], successorName(/CN=([^,]+)/.exec(current.subject)![1]!, 2));

    const bundles = trustBundles(await registry.authorities.list());
    assert.ok(bundles.caBundlePem.includes(next.pem.trim()));
    assert.ok(bundles.clientTrustPem.includes(next.pem.trim()));
    assert.equal((await enroll()).ca, 'default');
    // Enrolling under it by name is refused too: it signs nothing before it is activated.
    await registry.lifecycle.createDevice({ id: 'early' as DeviceId }, operator);
    await assert.rejects(provisioning.enroll('early' as DeviceId, (await ecKeyWithCsr()).csrPem, operator, 'issuing-2'), { code: 'ca_not_signing' });
    assert.deepEqual(await actions('issuing-2'), ['ca.created', 'ca.prepared']);
  });

  it('keeps waiting until five sixths, then activates the next CA and supersedes the current one', async () => {
    const { activateAt } = await due();
    stepTo(activateAt, -1000);
    assert.deepEqual(await rotator.step(), []);
    stepTo(activateAt);
    assert.deepEqual(await rotator.step(), [{ step: 'activated', caId: 'issuing-2' }]);
    assert.equal(rotator.current(), 'issuing-2');
    assert.deepEqual(rotator.slots.old.map((c) => c.caId), ['default']);
    assert.equal((await enroll()).ca, 'issuing-2');
    await assert.rejects(provisioning.enroll('early' as DeviceId, (await ecKeyWithCsr()).csrPem, operator, 'default'), { code: 'ca_not_signing' });
    assert.deepEqual(await actions('default'), ['ca.created', 'ca.activated', 'ca.superseded']);
  });

  it('keeps the superseded CA trusted while an active certificate depends on it, and retires it once none does', async () => {
    assert.deepEqual(await rotator.step(), []); // meter-1 is still ACTIVE under default
    assert.ok(trustBundles(await registry.authorities.list()).clientTrustPem.includes((await ca('default')).pem.trim()));
    const [underDefault] = (await registry.lifecycle.deviceView('meter-1' as DeviceId)).certificates;
    await registry.lifecycle.setCertificateStatus(underDefault!.serial, 'INACTIVE', operator, 'replaced');
    assert.deepEqual(await rotator.step(), [{ step: 'retired', caId: 'default', why: 'no_dependents' }]);
    // Nothing under a retired CA becomes active again.
    await assert.rejects(registry.lifecycle.setCertificateStatus(underDefault!.serial, 'ACTIVE', operator), { code: 'ca_retired' });
    const retired = await ca('default');
    assert.equal(retired.status, 'RETIRED');
    const bundles = trustBundles(await registry.authorities.list());
    assert.ok(!bundles.caBundlePem.includes(retired.pem.trim()));
    assert.ok(!bundles.clientTrustPem.includes(retired.pem.trim()));
    assert.deepEqual(rotator.slots.retired.map((c) => c.caId), ['default']);
    assert.equal((await actions('default')).at(-1), 'ca.retired');
  });

  it('runs the next cycle from the new CA’s own lifetime, and retires a superseded CA when it expires', async () => {
    const { prepareAt, activateAt } = await due();
    const issuing2 = await ca('issuing-2');
    assert.equal(prepareAt.getTime(), issuing2.notBefore.getTime() + (issuing2.notAfter.getTime() - issuing2.notBefore.getTime()) / 2);
    stepTo(prepareAt);
    assert.deepEqual(await rotator.step(), [{ step: 'prepared', caId: 'issuing-3' }]);
    const holdout = await enroll(); // stays ACTIVE under issuing-2 through its activation
    assert.equal(holdout.ca, 'issuing-2');
    stepTo(activateAt);
    assert.deepEqual(await rotator.step(), [{ step: 'activated', caId: 'issuing-3' }]);
    assert.equal(rotator.slots.current.generation, 3);
    assert.deepEqual(await rotator.step(), []);
    stepTo(issuing2.notAfter, 0);
    const steps = await rotator.step();
    assert.deepEqual(steps.filter((s) => s.step === 'retired'), [{ step: 'retired', caId: 'issuing-2', why: 'expired' }]);
    prepared += steps.filter((s) => s.step === 'prepared').length; // issuing-3's own half-way may fall here too
  });

  it('counts each step and shows each CA’s state in the metrics', async () => {
    const text = await metrics.metrics();
    assert.match(text, new RegExp(`fleet_ca_rotation_steps_total\\{step="prepared"\\} ${prepared}\n`));
    assert.match(text, /fleet_ca_rotation_steps_total\{step="activated"\} 2/);
    assert.match(text, /fleet_ca_rotation_steps_total\{step="retired"\} 2/);
    assert.match(text, /fleet_issuing_ca_state\{ca="issuing-3",state="active"\} 1/);
    assert.match(text, /fleet_issuing_ca_state\{ca="default",state="retired"\} 1/);
  });
});
