// Factory stations and roles: stations call the API over mutual TLS with certificates of
// their own, operator tokens and station certificates carry roles, every route declares the
// roles it needs, and a client certificate goes through the checks the broker applies.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { expiredButRegistered, foreignCaDevice, unregisteredDevice } from '../support/fixtures.js';
import { addOperator, addStation, startFleet, type StationFiles, type TestFleet } from '../support/fleet.js';
import { httpsRequest, type HttpRequest } from '../support/https.js';
import { ecKeyWithCsr } from '../support/keys.js';
import { FLEET_BIN } from '../support/process.js';
import type { Identity } from '../support/mqtt.js';

const run = promisify(execFile);

describe('stations and roles', { timeout: 90_000 }, () => {
  let fleet: TestFleet;
  let work: string;
  let line: StationFiles;
  let qa: StationFiles;
  let auditorToken: string;
  let operatorToken: string;
  let device: Identity;

  before(async () => {
    fleet = await startFleet();
    work = await mkdtemp(join(tmpdir(), 'stations-test-'));
    [line, qa, auditorToken, operatorToken] = await Promise.all([
      addStation(fleet.dir, 'line-1', [], fleet.service.apiUrl),
      addStation(fleet.dir, 'qa-1', ['auditor'], fleet.service.apiUrl),
      addOperator(fleet.dir, 'audrey', ['auditor']),
      addOperator(fleet.dir, 'olga'),
    ]);
    device = await fleet.enroll('plain-device');
  });
  after(async () => {
    await fleet.close();
    await rm(work, { recursive: true, force: true });
  });

  const as = (identity: { certPem: string; keyPem: string }) => (path: string, request: HttpRequest = {}) =>
    httpsRequest(`${fleet.service.apiUrl}${path}`, fleet.ca, { ...request, cert: identity.certPem, key: identity.keyPem });
  const code = (r: { status: number; json: { error?: { code?: string } } | undefined }) => [r.status, r.json?.error?.code];

  it('writes the station key readable by its owner only', async () => {
    assert.equal((await stat(line.keyPath)).mode & 0o777, 0o600);
    const listed = await fleet.api('/v1/stations');
    assert.deepEqual(
      listed.json.stations.map((s: { name: string; roles: string[]; status: string }) => [s.name, s.roles, s.status]),
      [['line-1', ['provisioner'], 'ACTIVE'], ['qa-1', ['auditor'], 'ACTIVE']],
    );
  });

  it('lets a station register and enroll devices over mutual TLS with curl, and audits it as the station', async () => {
    const caPath = join(fleet.dir, 'pki', 'ca-bundle.pem');
    const curl = (...args: string[]) => run('curl', ['-sS', '--cacert', caPath, '--cert', line.certPath, '--key', line.keyPath, '-w', '\n%{http_code}', ...args]);
    const created = await curl('-H', 'Content-Type: application/json', '-d', '{"id": "fab-0001"}', `${fleet.service.apiUrl}/v1/devices`);
    assert.equal(created.stdout.trim().split('\n').pop(), '201');
    const csrPath = join(work, 'fab.csr');
    await writeFile(csrPath, JSON.stringify({ csr: (await ecKeyWithCsr()).csrPem }));
    const enrolled = await curl('-H', 'Content-Type: application/json', '--data-binary', `@${csrPath}`, `${fleet.service.apiUrl}/v1/devices/fab-0001/certificates`);
    const lines = enrolled.stdout.trim().split('\n');
    assert.equal(lines.pop(), '201');
    assert.match(JSON.parse(lines.join('\n')).certificate, /BEGIN CERTIFICATE/);

    const audit = await fleet.api('/v1/audit?device=fab-0001');
    assert.deepEqual(
      audit.json.entries.map((e: { actor: string; action: string }) => [e.actor, e.action]),
      [['station:line-1', 'device.created'], ['station:line-1', 'certificate.issued']],
    );
  });

  it('answers a call outside the caller’s roles with 403 forbidden, and lets it do what its roles allow', async () => {
    assert.deepEqual(code(await as(qa)('/v1/devices', { body: { id: 'qa-made' } })), [403, 'forbidden']);
    assert.equal((await as(qa)('/v1/devices/fab-0001')).status, 200);
    assert.deepEqual(code(await fleet.api('/v1/devices/fab-0001/disable', { token: auditorToken, method: 'POST' })), [403, 'forbidden']);
    assert.equal((await fleet.api('/v1/audit', { token: auditorToken })).status, 200);
    assert.deepEqual(code(await fleet.api('/v1/cas', { token: operatorToken, body: { name: 'not-yours' } })), [403, 'forbidden']);
    assert.deepEqual(code(await as(line)('/v1/audit')), [403, 'forbidden']);
    // A device's own certificate reaches nothing but its own renewal.
    assert.deepEqual(code(await as(device)('/v1/devices/plain-device')), [403, 'forbidden']);
  });

  it('declares the roles of every route, and refuses each to a principal without them', async () => {
    const listed = await fleet.api('/v1/access');
    assert.equal(listed.status, 200);
    const routes: { method: string; url: string; public?: boolean; roles?: string[] }[] = listed.json.routes;
    assert.ok(routes.length > 40, `${routes.length} routes`);
    assert.deepEqual(routes.filter((r) => !r.public && !(r.roles && r.roles.length > 0)), [], 'every route is public or names its roles');
    const pool: { roles: string[]; request: HttpRequest }[] = [
      { roles: ['admin'], request: { token: fleet.token } },
      { roles: ['operator'], request: { token: operatorToken } },
      { roles: ['auditor'], request: { token: auditorToken } },
      { roles: ['provisioner'], request: { cert: line.certPem, key: line.keyPem } },
      { roles: ['device'], request: { cert: device.certPem, key: device.keyPem } },
    ];
    for (const route of routes) {
      const path = route.url.replace(/:[A-Za-z]+/g, 'walk-1');
      const result = await httpsRequest(`${fleet.service.apiUrl}${path}`, fleet.ca, {
        method: route.method,
        ...(route.public ? {} : pool.find((p) => !p.roles.some((r) => route.roles!.includes(r)))!.request),
      });
      if (route.public) assert.ok(![401, 403].includes(result.status), `${route.method} ${route.url} is public: ${result.status}`);
      else assert.deepEqual(code(result), [403, 'forbidden'], `${route.method} ${route.url}`);
    }
  });

  it('refuses client certificates the broker would refuse, each with its code', async () => {
    assert.deepEqual(code(await as(await foreignCaDevice('stranger'))('/v1/devices/plain-device')), [401, 'client_certificate_untrusted']);
    assert.deepEqual(code(await as(await unregisteredDevice(fleet, 'ghost'))('/v1/devices/plain-device')), [401, 'client_certificate_unregistered']);
    await fleet.api('/v1/devices', { body: { id: 'sleeper' } });
    assert.deepEqual(code(await as(await expiredButRegistered(fleet, 'sleeper'))('/v1/devices/sleeper')), [401, 'client_certificate_expired']);
    const revoked = await fleet.enroll('revoked-device');
    await fleet.api(`/v1/certificates/${revoked.serial}/revoke`, { method: 'POST' });
    assert.deepEqual(code(await as(revoked)('/v1/devices/revoked-device')), [401, 'client_certificate_revoked']);
    const inactive = await fleet.enroll('resting-device');
    await fleet.api(`/v1/certificates/${inactive.serial}/deactivate`, { method: 'POST' });
    assert.deepEqual(code(await as(inactive)('/v1/devices/resting-device')), [401, 'client_certificate_inactive']);
  });

  it('refuses a revoked station at once and lists its certificate on the CRL', async () => {
    const station = await addStation(fleet.dir, 'line-2', ['provisioner'], fleet.service.apiUrl);
    assert.equal((await as(station)('/v1/devices', { body: { id: 'before-revocation' } })).status, 201);
    assert.deepEqual(code(await as(station)('/v1/stations/line-2/revoke', { method: 'POST' })), [403, 'forbidden']);
    const revoked = await fleet.api('/v1/stations/line-2/revoke', { body: { reason: 'keyCompromise' } });
    assert.deepEqual([revoked.status, revoked.json.status], [200, 'REVOKED']);
    assert.deepEqual(code(await as(station)('/v1/devices', { body: { id: 'after-revocation' } })), [401, 'client_certificate_revoked']);
    const crl = join(work, 'crl.der');
    await writeFile(crl, (await fleet.api('/v1/crl', { anonymous: true })).body);
    const { stdout } = await run('openssl', ['crl', '-inform', 'DER', '-in', crl, '-noout', '-text']);
    assert.match(stdout, new RegExp(revoked.json.serial.toUpperCase()));
    assert.equal((await fleet.api('/v1/audit?actor=operator:admin')).json.entries.filter((e: { action: string }) => e.action === 'station.revoked').length, 1);
  });

  it('trusts a CA created while running for client certificates, without losing the others', async () => {
    assert.equal((await fleet.api('/v1/cas', { body: { name: 'line-ca' } })).status, 201);
    await fleet.api('/v1/devices', { body: { id: 'new-ca-device' } });
    const key = await ecKeyWithCsr();
    const enrolled = await fleet.api('/v1/devices/new-ca-device/certificates', { body: { csr: key.csrPem, ca: 'line-ca' } });
    // The leaf alone: it verifies only if the API trusts the new CA itself.
    const underNewCa = { certPem: enrolled.json.certificate, keyPem: key.keyPem };
    // Identified (a device, so forbidden here), not untrusted: the API's trust was replaced whole.
    assert.deepEqual(code(await as(underNewCa)('/v1/devices/new-ca-device')), [403, 'forbidden']);
    assert.equal((await as(line)('/v1/devices/fab-0001')).status, 200);
  });

  it('gives operator tokens and stations only roles from the table', async () => {
    const cli = (...args: string[]) => run(process.execPath, [FLEET_BIN, ...args]).then(() => 0, (e: { code: number }) => e.code);
    assert.equal(await cli('operator', 'add', 'zed', '--role', 'superuser', '--data', fleet.dir), 2);
    assert.equal(await cli('station', 'add', 'line-9', '--role', 'admin', '--data', fleet.dir), 2);
    assert.equal(await cli('station', 'add', 'line-1', '--data', fleet.dir), 1, 'a station name is taken once');
    const names = (await fleet.api('/v1/stations')).json.stations.map((s: { name: string }) => s.name);
    assert.ok(!names.includes('line-9'));
  });
});
