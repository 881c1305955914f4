// The `fleet` command as users run it: init, serve's argument checks, and sim against a
// running service.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { FLEET_BIN, spawnServe, type ServeProcess } from '../support/process.js';
import { foreignCaDevice } from '../support/fixtures.js';
import { enrollDevice } from '../support/fleet.js';
import { httpsRequest } from '../support/https.js';
import { ecKeyWithCsr } from '../support/keys.js';

const run = promisify(execFile);

async function fleet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [FLEET_BIN, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const mode = async (path: string) => (await stat(path)).mode & 0o777;
const sha256 = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

describe('fleet init', { timeout: 60_000 }, () => {
  let base: string;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'fleet-cli-'));
  });
  after(() => rm(base, { recursive: true, force: true }));

  it('creates the data directory of the contract, with secrets readable by the owner only', async () => {
    const dir = join(base, 'data');
    const result = await fleet('init', '--data', dir);
    assert.equal(result.code, 0);
    for (const file of ['pki/root.pem', 'pki/ca-bundle.pem', 'pki/server.pem', 'registry.db', 'admin.token']) {
      assert.ok((await stat(join(dir, file))).size > 0, file);
    }
    for (const secret of ['admin.token', 'pki/root.key', 'pki/issuing.key', 'pki/server.key']) assert.equal(await mode(join(dir, secret)), 0o600, secret);
    assert.ok(!result.stdout.includes('PRIVATE KEY') && !result.stderr.includes('PRIVATE KEY'));
    const bundle = await readFile(join(dir, 'pki', 'ca-bundle.pem'), 'utf8');
    assert.equal(bundle.match(/BEGIN CERTIFICATE/g)?.length, 2, 'root and issuing CA');
  });

  it('never overwrites: a second init changes nothing and says so', async () => {
    const dir = join(base, 'data');
    const before = await Promise.all([sha256(join(dir, 'pki', 'root.pem')), sha256(join(dir, 'admin.token'))]);
    const result = await fleet('init', '--data', dir);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /already initialized/);
    assert.deepEqual(await Promise.all([sha256(join(dir, 'pki', 'root.pem')), sha256(join(dir, 'admin.token'))]), before);
  });

  it('refuses a directory that holds something else', async () => {
    const dir = join(base, 'not-ours');
    await mkdir(dir);
    await writeFile(join(dir, 'notes.txt'), 'mine');
    const result = await fleet('init', '--data', dir);
    assert.equal(result.code, 1);
    assert.equal(await readFile(join(dir, 'notes.txt'), 'utf8'), 'mine');
  });

  it('answers usage errors with exit code 2', async () => {
    assert.equal((await fleet('serve', '--mqtt-port', 'eighty')).code, 2);
    assert.equal((await fleet('serve', '--no-such-flag')).code, 2);
    assert.equal((await fleet('launch')).code, 2);
    assert.equal((await fleet('sim', '--qos', '2')).code, 2);
    assert.equal((await fleet('sim', '--scenario', 'stampede')).code, 2);
    assert.equal((await fleet('sim', '--scenario', 'rotation', '--qos', '0')).code, 2);
    assert.equal((await fleet('sim', '--scenario', 'revocation', '--devices', '2', '--revoke', '3')).code, 2);
    assert.equal((await fleet('sim', '--enroll', 'factory')).code, 2);
    assert.equal((await fleet('sim', '--renew', 'mqtt,carrier-pigeon')).code, 2);
    assert.equal((await fleet('sim', '--enroll', 'claim', '--claim-rate', '20000')).code, 2);
    assert.equal((await fleet('sim', '--enroll', 'claim', '--claim-rate', '0')).code, 2);
  });
});

describe('fleet sim', { timeout: 90_000 }, () => {
  let dir: string;
  let serve: ServeProcess;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-sim-'));
    serve = await spawnServe(dir);
  });
  after(async () => {
    await serve.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const target = () => ['--data', dir, '--api', serve.apiUrl, '--mqtt', `mqtts://127.0.0.1:${serve.mqttPort}`, '--report-dir', join(dir, 'reports')];

  it('enrolls, connects and publishes with a fleet of virtual devices, and reports the figures', async () => {
    const result = await fleet('sim', ...target(), '--devices', '6', '--rate', '5', '--duration', '1', '--qos', '1', '--json');
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.equal(report.scenario, 'telemetry', 'the default scenario');
    assert.equal(report.enroll.ok, 6);
    assert.equal(report.connect.ok, 6);
    assert.equal(report.connect.failed, 0);
    assert.ok(report.publish.sent >= 6, `sent ${report.publish.sent}`);
    assert.equal(report.publish.completed, report.publish.sent, 'every QoS 1 message acknowledged');
    assert.ok(report.connect.latencyMs.p50 > 0);
    assert.equal(report.publish.lost, 0);
    // The devices really went through the broker (beside them, the backend reader of their telemetry).
    assert.equal((await serve.logsWritten()).filter((e) => e.event === 'admitted' && String(e.clientId).startsWith(`${report.options.idPrefix}-0`)).length, 6);
    // The JSON and HTML reports are on disk, named after the scenario.
    const written = await readdir(join(dir, 'reports'));
    assert.ok(written.some((f) => /^telemetry-.*\.json$/.test(f)) && written.some((f) => /^telemetry-.*\.html$/.test(f)), written.join());
  });

  it('prints a readable table without --json, saying how the devices enrolled (here by claim)', async () => {
    const result = await fleet('sim', ...target(), '--devices', '2', '--duration', '0.5', '--enroll', 'claim', '--claim-rate', '50');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^enrolled\s+by claim: 2 ok, 0 failed/m);
    assert.match(result.stdout, /^claims\s+batch \S+-claim \(limit 50\/s, bursts of 50; paced at 50\/s, bursts of 25\): 2 sessions, 2 create-from-csr and 2 register accepted/m);
    assert.match(result.stdout, /^connected\s+2 ok, 0 failed/m);
    assert.match(result.stdout, /^published\s+\d+\/\d+ completed, 0 failed/m);
    assert.match(result.stdout, /^ {2}pass {2}every device connected/m);
    assert.match(result.stdout, /^reports\s+.*\.json, .*\.html$/m);
  });

  it('says which port is taken instead of crashing', async () => {
    const taken = await fleet('serve', '--data', join(dir, 'second'), '--mqtt-port', String(serve.mqttPort), '--api-port', '0');
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, new RegExp(`:${serve.mqttPort} \\(EADDRINUSE\\)`));
    assert.doesNotMatch(taken.stderr, /\n\s+at /, 'no stack trace');
  });

  it('exits 1 when a scenario misses its pass criteria', async () => {
    // Churn whose devices are almost never dropped in half a second: no reconnect to show.
    const result = await fleet('sim', ...target(), '--scenario', 'churn', '--devices', '2', '--duration', '0.5', '--drop-interval', '100000', '--rate', '0');
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stdout, /^ {2}FAIL {2}devices dropped and reconnected/m);
  });
});

describe('fleet serve', { timeout: 60_000 }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-serve-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('takes the longest break-glass grant from --break-glass-max', async () => {
    const serve = await spawnServe(dir, { args: ['--break-glass-max', '60'] });
    try {
      const ca = await readFile(join(dir, 'pki', 'ca-bundle.pem'), 'utf8');
      const token = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
      await httpsRequest(`${serve.apiUrl}/v1/devices`, ca, { token, body: { id: 'bg-max' } });
      const grant = (durationSeconds: number) => httpsRequest(`${serve.apiUrl}/v1/break-glass`, ca, { token, body: { deviceId: 'bg-max', waives: 'certificate_expired', reason: 'test', durationSeconds } });
      const long = await grant(61);
      assert.deepEqual([long.status, long.json.error.code], [400, 'grant_too_long']);
      assert.equal((await grant(60)).status, 201);
    } finally {
      await serve.stop();
    }
    assert.equal((await fleet('serve', '--data', dir, '--break-glass-max', '0')).code, 2);
    assert.equal((await fleet('serve', '--data', dir, '--batch-retention-days', 'never')).code, 2);
  });

  it('writes its readiness line at --log-level warn, and no other info line', async () => {
    // A fresh directory: creating it is logged at info (data_dir_created), which warn must hide.
    const serve = await spawnServe(join(dir, 'at-warn'), { args: ['--log-level', 'warn'] });
    try {
      const logs = await serve.logsWritten();
      const ready = logs.filter((e) => e.event === 'listening');
      assert.equal(ready.length, 1, serve.diagnosis());
      assert.ok(serve.mqttPort > 0);
      assert.deepEqual(logs.filter((e) => e.event !== 'listening' && e.level < 40), [], 'only warn and above besides the readiness line');
      const created = await readdir(join(dir, 'at-warn'));
      assert.ok(created.includes('admin.token'), 'the directory was initialized, unlogged');
    } finally {
      await serve.stop();
    }
  });
});

describe('fleet diagnose', { timeout: 90_000 }, () => {
  let dir: string;
  let serve: ServeProcess;
  let files: { cert: string; key: string; otherKey: string };
  let serial: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-diagnose-'));
    serve = await spawnServe(dir);
    const ca = await readFile(join(dir, 'pki', 'ca-bundle.pem'), 'utf8');
    const token = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
    const device = await enrollDevice(serve.apiUrl, ca, token, 'diag-1');
    serial = device.serial;
    files = { cert: join(dir, 'diag.pem'), key: join(dir, 'diag.key'), otherKey: join(dir, 'other.key') };
    await writeFile(files.cert, device.certPem);
    await writeFile(files.key, device.keyPem);
    await writeFile(files.otherKey, (await ecKeyWithCsr()).keyPem);
  });
  after(async () => {
    await serve.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('walks every check for a good certificate and says it would be admitted', async () => {
    const result = await fleet('diagnose', files.cert, '--key', files.key, '--data', dir);
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stdout, /FAIL/);
    for (const step of ['certificate parses', 'private key matches the certificate', 'chain verified by TLS', 'within validity', 'client id is the certificate device id', 'registry: certificate good, device active']) {
      assert.match(result.stdout, new RegExp(`pass\\s+${step}`));
    }
    assert.match(result.stdout, /verdict: admitted as diag-1/);
  });

  it('stops at the check that decides, and names the reason', async () => {
    const wrongKey = await fleet('diagnose', files.cert, '--key', files.otherKey, '--data', dir);
    assert.equal(wrongKey.code, 1);
    assert.match(wrongKey.stdout, /FAIL\s+private key matches the certificate/);
    const spoof = await fleet('diagnose', files.cert, '--client-id', 'someone-else', '--data', dir);
    assert.match(spoof.stdout, /verdict: refused — client_id_mismatch/);

    const ca = await readFile(join(dir, 'pki', 'ca-bundle.pem'), 'utf8');
    const token = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
    await httpsRequest(`${serve.apiUrl}/v1/certificates/${serial}/revoke`, ca, { token, method: 'POST' });
    const revoked = await fleet('diagnose', files.cert, '--data', dir);
    assert.equal(revoked.code, 1);
    assert.match(revoked.stdout, /FAIL\s+registry: certificate good, device active/);
    assert.match(revoked.stdout, /verdict: refused — certificate_revoked: .*\(CONNACK 5\)/);

    // Under a revoked CA: what the broker would say (the CA stays in its trust), not a broken chain.
    await httpsRequest(`${serve.apiUrl}/v1/cas`, ca, { token, body: { name: 'diag-ca' } });
    await httpsRequest(`${serve.apiUrl}/v1/devices`, ca, { token, body: { id: 'diag-2' } });
    const key = await ecKeyWithCsr();
    const underCa = await httpsRequest(`${serve.apiUrl}/v1/devices/diag-2/certificates`, ca, { token, body: { csr: key.csrPem, ca: 'diag-ca' } });
    const underCaFile = join(dir, 'diag-2.pem');
    await writeFile(underCaFile, underCa.json.certificate);
    assert.match((await fleet('diagnose', underCaFile, '--data', dir)).stdout, /verdict: admitted as diag-2/);
    assert.equal((await httpsRequest(`${serve.apiUrl}/v1/cas/diag-ca/revoke`, ca, { token, method: 'POST' })).status, 200);
    const underRevokedCa = await fleet('diagnose', underCaFile, '--data', dir);
    assert.match(underRevokedCa.stdout, /pass\s+chain verified by TLS/);
    assert.match(underRevokedCa.stdout, /verdict: refused — certificate_revoked/);

    // A file that is not there is a clear error, not a stack trace.
    const missing = await fleet('diagnose', join(dir, 'missing.pem'), '--data', dir);
    assert.equal(missing.code, 1);
    assert.doesNotMatch(missing.stderr, /\n\s+at /, 'no stack trace');

    const foreign = join(dir, 'foreign.pem');
    await writeFile(foreign, (await foreignCaDevice('stranger')).certPem);
    assert.match((await fleet('diagnose', foreign, '--data', dir)).stdout, /FAIL\s+chain verified by TLS[\s\S]*verdict: refused — unknown_issuer/);
  });
});
