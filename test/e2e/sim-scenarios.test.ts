// Each simulator scenario, small, against a real `fleet serve` over real mutual TLS. The
// assertions look at what really happened — the service's log and API — as well as at the
// simulator's own report.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentProgress } from '../../firmware-sim/progress.js';
import type { FleetConfig } from '../../firmware-sim/fleet.js';
import { runScenario, type RunReport } from '../../firmware-sim/run.js';
import { SCENARIOS } from '../../firmware-sim/scenarios/index.js';
import type { ScenarioName, ScenarioOptions } from '../../firmware-sim/scenarios/scenario.js';
import { httpsRequest } from '../support/https.js';
import { spawnServe, type ServeProcess } from '../support/process.js';

describe('fleet sim scenarios against fleet serve', { timeout: 120_000 }, () => {
  let dir: string;
  let serve: ServeProcess;
  let ca: string;
  let token: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-sim-scenarios-'));
    serve = await spawnServe(dir);
    ca = await readFile(join(dir, 'pki', 'ca-bundle.pem'), 'utf8');
    token = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
  });
  after(async () => {
    await serve.stop();
    await rm(dir, { recursive: true, force: true });
  });

  function run(scenario: ScenarioName, prefix: string, options: Partial<ScenarioOptions>, fleet: Partial<FleetConfig> = {}): Promise<RunReport> {
    const full: ScenarioOptions = { devices: 8, ratePerDevice: 5, durationMs: 2000, qos: 1, revoke: 2, dropIntervalMs: 1000, drainMs: 10_000, ...options };
    return runScenario({
      scenario: SCENARIOS[scenario],
      options: full,
      progress: silentProgress,
      fleet: { apiUrl: serve.apiUrl, mqttUrl: `mqtts://127.0.0.1:${serve.mqttPort}`, token, caPem: ca, idPrefix: prefix, devices: full.devices, qos: full.qos, concurrency: 8, ...fleet },
    });
  }
  type DeviceView = { status: string; certificates: { serial: string; status: string }[] };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are checked by the tests
  const get = async (path: string): Promise<any> => (await httpsRequest(`${serve.apiUrl}${path}`, ca, { token })).json;
  const api = async (path: string) => (await get(path)) as DeviceView;
  const norm = (s: unknown) => String(s).replace(/:/g, '').toLowerCase();
  /** How the device's active certificate came to be: the audit entry that recorded it. */
  const issuedBy = async (id: string) => {
    const active = (await api(`/v1/devices/${id}`)).certificates.find((c) => c.status === 'ACTIVE')!;
    const entries = (await get(`/v1/audit?certificate=${active.serial}`)).entries as { actor: string; action: string }[];
    return entries.find((e) => e.action === 'certificate.renewed' || e.action === 'certificate.issued')!;
  };
  const logsOf = async (event: string, prefix: string) => (await serve.logsWritten()).filter((e) => e.event === event && typeof e.clientId === 'string' && e.clientId.startsWith(`${prefix}-0`));
  const failedCriteria = (r: RunReport) => r.criteria.filter((c) => !c.passed).map((c) => `${c.name}: ${c.actual}`);

  it('storm: every device connects, the broker admits each once, connects per second are on the time line', async () => {
    const r = await run('storm', 'storm', { devices: 20, durationMs: 500, ratePerDevice: 0, qos: 0 });
    assert.deepEqual(failedCriteria(r), []);
    assert.equal(r.passed, true);
    assert.equal(r.connect.online, 20);
    assert.equal(r.connect.failed, 0);
    assert.equal(r.series.connects.reduce((a, b) => a + b, 0), 20);
    assert.equal(new Set((await logsOf('admitted', 'storm')).map((e) => e.clientId)).size, 20);
    assert.ok(r.memory.perDeviceKiB !== 0 && Number.isFinite(r.memory.perDeviceKiB));
  });

  it('telemetry: QoS 1 at a steady rate, all delivered once to the backend, and a command to every device', async () => {
    const r = await run('telemetry', 'tele', { devices: 6, ratePerDevice: 10, durationMs: 2000 });
    assert.deepEqual(failedCriteria(r), []);
    assert.ok(r.publish.sent >= 6 * 10 * 2 * 0.8, `sent ${r.publish.sent}`);
    assert.equal(r.publish.completed, r.publish.sent, 'every reading acknowledged');
    assert.equal(r.publish.received, r.publish.sent, 'every reading reached the backend');
    assert.equal(r.publish.lost, 0);
    assert.equal(r.commands.received, 6);
    assert.equal(r.connect.failed, 0);
  });

  it('rotation: every device ends on a new certificate with zero failed connects and zero lost QoS 1, renewing over HTTPS or the operator API', async () => {
    const r = await run('rotation', 'rot', { devices: 8, ratePerDevice: 10, durationMs: 3000 }, { renewVia: ['https', 'api'] });
    assert.deepEqual(failedCriteria(r), []);
    assert.equal(r.connect.failed, 0);
    assert.equal(r.publish.lost, 0);
    assert.equal(r.publish.received! + r.publish.abandoned!, r.publish.sent);
    assert.equal(r.renewal.renewed, 8);
    assert.deepEqual(r.renewal.via, ['https', 'api']);
    assert.deepEqual([r.renewal.channels.https?.renewed, r.renewal.channels.api?.renewed, r.renewal.channels.mqtt], [4, 4, undefined]);
    assert.equal(r.renewal.channels.https!.latencyMs.count, 4);
    for (let i = 0; i < 8; i++) {
      const id = `rot-${String(i).padStart(6, '0')}`;
      const device = await api(`/v1/devices/${id}`);
      const statuses = device.certificates.map((c) => c.status).sort();
      assert.deepEqual(statuses, ['ACTIVE', 'REVOKED'], `${id}: the first certificate revoked, the renewed one active`);
      const active = device.certificates.find((c) => c.status === 'ACTIVE')!;
      assert.ok((await logsOf('admitted', 'rot')).some((e) => e.clientId === id && norm(e.serial) === norm(active.serial)), `${id} admitted with its new certificate`);
      // Devices take the channels in turn: the even ones renewed themselves over mutual TLS, the odd ones were re-issued by the operator.
      const audit = await issuedBy(id);
      assert.deepEqual([audit.actor.split(':')[0], audit.action], i % 2 === 0 ? ['device', 'certificate.renewed'] : ['operator', 'certificate.issued'], id);
    }
    // The old certificates were revoked while the devices ran on the new ones: nobody was thrown off.
    assert.equal(r.connect.drops, 0);
  });

  it('claim and rotation over MQTT: the fleet enrolls by claim at its batch’s pace, then every device renews on its own session', async () => {
    const devices = 6;
    // 10 requests a second, half a burst of 10 for the pace: twelve requests, so some wait their turn.
    const r = await run('rotation', 'claimed', { devices, ratePerDevice: 10, durationMs: 3000 }, { enrollVia: 'claim', claimRate: 10, renewVia: ['mqtt'] });
    assert.deepEqual(failedCriteria(r), []);
    assert.equal(r.enroll.via, 'claim');
    const claim = r.enroll.claim!;
    assert.deepEqual([claim.sessions, claim.accepted, claim.refusals], [devices, { create: devices, register: devices }, {}]);
    assert.deepEqual([claim.rateLimit, claim.pace], [{ perSecond: 10, burst: 10 }, { perSecond: 10, burst: 5 }]);
    assert.ok(claim.paced.requests >= 2 * devices - 5 - 1, `requests past the pace's burst waited (${claim.paced.requests})`);
    assert.equal(claim.latencyMs.create.count, devices);
    // The service saw the same: one batch with its limit, every certificate it issued registered.
    const batch = await get(`/v1/claim-batches/${claim.batch}`);
    assert.deepEqual([batch.rateLimit, batch.certificates], [{ perSecond: 10, burst: 10 }, { issued: devices, registered: devices }]);
    const logs = await serve.logsWritten();
    assert.equal(logs.filter((e) => e.event === 'claim_accepted' && e.batch === claim.batch).length, 2 * devices);
    assert.equal(logs.filter((e) => e.event === 'refusal' && typeof e.clientId === 'string' && e.clientId.startsWith(`claim/${claim.batch}/`)).length, 0);

    assert.equal(r.connect.failed, 0);
    assert.equal(r.publish.lost, 0);
    assert.deepEqual([r.renewal.via, r.renewal.channels.mqtt?.renewed, r.renewal.channels.mqtt?.failed], [['mqtt'], devices, 0]);
    for (let i = 0; i < devices; i++) {
      const id = `claimed-${String(i).padStart(6, '0')}`;
      const device = await api(`/v1/devices/${id}`);
      assert.deepEqual(device.certificates.map((c) => c.status).sort(), ['ACTIVE', 'REVOKED'], `${id}: the claimed certificate revoked, the renewed one active`);
      const audit = await issuedBy(id);
      assert.deepEqual([audit.actor, audit.action], [`device:${id}`, 'certificate.renewed'], `${id} renewed itself`);
      assert.ok(serve.logs.some((e) => e.event === 'renewed' && e.via === 'mqtt' && e.deviceId === id), `${id} renewed over MQTT`);
    }
    assert.equal(r.connect.drops, 0);
  });

  it('revocation: the revoked devices stop on not_authorized without retrying, the others stay connected', async () => {
    const r = await run('revocation', 'rev', { devices: 10, revoke: 3, ratePerDevice: 2, durationMs: 1500 });
    assert.deepEqual(failedCriteria(r), []);
    const revoked = r.details.devices as { id: string; stopReason: string; attemptsAfterRevocation: number; requestToCloseMs: number }[];
    assert.equal(revoked.length, 3);
    for (const d of revoked) {
      assert.equal(d.stopReason, 'not_authorized');
      assert.equal(d.attemptsAfterRevocation, 1, `${d.id}: one reconnect, refused, then silence`);
      assert.ok(d.requestToCloseMs > 0);
      assert.equal((await api(`/v1/devices/${d.id}`)).status, 'DECOMMISSIONED');
      // The broker saw exactly one refused CONNECT from each: the device did not retry.
      const refusals = (await logsOf('refusal', 'rev')).filter((e) => e.clientId === d.id);
      assert.equal(refusals.length, 1, `${d.id} refused once`);
    }
    assert.deepEqual(r.devices.stoppedBy, { not_authorized: 3 });
    assert.equal(r.devices.onlineAtEnd, 7);
    assert.equal(r.connect.drops, 3, 'only the revoked devices lost their connection');
  });

  it('churn: devices drop at random, come back with backoff, and are all online at the end with nothing lost', async () => {
    const r = await run('churn', 'churn', { devices: 8, ratePerDevice: 5, durationMs: 3000, dropIntervalMs: 1000 });
    assert.deepEqual(failedCriteria(r), []);
    assert.ok(r.connect.reconnects > 0);
    assert.ok(r.connect.drops > 0);
    assert.equal(r.devices.onlineAtEnd, 8);
    assert.equal(r.publish.lost, 0);
    assert.ok((await logsOf('admitted', 'churn')).length > 8, 'the broker admitted the reconnects');
  });
});
