// `fleet serve --workers 2`: two broker processes on one machine behind the same ports,
// sharing state through a Redis of the test's own and the registry through one SQLite file
// (initialized once, by the primary). A real process tree, real mTLS clients.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { startRedis, type RedisServer } from '../support/cluster.js';
import { enrollDevice, type EnrolledDevice } from '../support/fleet.js';
import { httpsRequest } from '../support/https.js';
import { closed, connect, end, mqttOptions } from '../support/mqtt.js';
import { FLEET_BIN, spawnServe, type ServeProcess } from '../support/process.js';
import { eventually } from '../support/wait.js';

describe('fleet serve --workers', { timeout: 90_000 }, () => {
  let dir: string;
  let redis: RedisServer;
  let serve: ServeProcess;
  let ca: string;
  let token: string;
  const clients: MqttClient[] = [];
  const listening = () => serve.logs.filter((e) => e.event === 'listening');
  /** The worker that admitted a client's latest connection. */
  const nodeOf = (clientId: string) => serve.logs.filter((e) => e.event === 'admitted' && e.clientId === clientId).at(-1)?.node;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-workers-'));
    redis = await startRedis();
    serve = await spawnServe(dir, { args: ['--workers', '2', '--redis', redis.url, '--node-name', 'box', '--connect-rate', '1000', '--connect-burst', '1000'] });
    await eventually(() => listening().length === 2, 20_000, 'both workers listening');
    ca = await readFile(join(dir, 'pki', 'ca-bundle.pem'), 'utf8');
    token = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
  });
  after(async () => {
    for (const client of clients) client.end(true);
    await serve.stop();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses --workers without --redis, and a count that is not one', async () => {
    for (const args of [['--workers', '2'], ['--workers', 'many', '--redis', redis.url], ['--workers', '0', '--redis', redis.url]]) {
      const outcome = await promisify(execFile)(process.execPath, [FLEET_BIN, 'serve', '--data', dir, ...args]).then(
        () => 0,
        (error: { code: number }) => error.code,
      );
      assert.equal(outcome, 2, args.join(' '));
    }
  });

  it('runs two named workers on the same ports', () => {
    const [a, b] = listening();
    assert.equal(a!.mqtt, b!.mqtt);
    assert.equal(a!.api, b!.api);
    assert.deepEqual(listening().map((e) => e.node).sort(), ['box-w1', 'box-w2'], serve.diagnosis(40));
    assert.equal(serve.logs.filter((e) => e.event === 'data_dir_created').length, 0, 'the primary created the data directory, not a worker');
  });

  it('routes a message between workers and closes a revoked session on whichever worker holds it', async () => {
    const reader = await enrollDevice(serve.apiUrl, ca, token, 'reader');
    assert.equal((await httpsRequest(`${serve.apiUrl}/v1/groups`, ca, { token, body: { id: 'backend', policy: { publish: [], subscribe: ['devices/+/telemetry'] } } })).status, 201);
    assert.equal((await httpsRequest(`${serve.apiUrl}/v1/groups/backend/members/reader`, ca, { token, method: 'PUT' })).status, 200);
    const backend = await connect(mqttOptions(serve.mqttPort, ca, reader));
    clients.push(backend);
    await backend.subscribeAsync('devices/+/telemetry', { qos: 1 });
    await eventually(() => nodeOf('reader') !== undefined, 5000, 'reader admitted');

    // Connections are handed to the workers in turn: connect devices until one lands on the other worker.
    let elsewhere: { device: EnrolledDevice; client: MqttClient } | undefined;
    for (let i = 0; i < 6 && !elsewhere; i++) {
      const device = await enrollDevice(serve.apiUrl, ca, token, `sensor-${i}`);
      const client = await connect(mqttOptions(serve.mqttPort, ca, device));
      clients.push(client);
      await eventually(() => nodeOf(device.id) !== undefined, 5000, `${device.id} admitted`);
      if (nodeOf(device.id) !== nodeOf('reader')) elsewhere = { device, client };
    }
    assert.ok(elsewhere, 'a device landed on the other worker');
    const arrived = new Promise<string>((resolve) => backend.once('message', (_t, payload) => resolve(payload.toString())));
    await elsewhere.client.publishAsync(`devices/${elsewhere.device.id}/telemetry`, 'across workers', { qos: 1 });
    assert.equal(await arrived, 'across workers');

    const gone = closed(elsewhere.client);
    const revoked = await httpsRequest(`${serve.apiUrl}/v1/devices/${elsewhere.device.id}/revoke`, ca, { token, method: 'POST' });
    assert.equal(revoked.status, 200);
    assert.equal(revoked.json.connected, false);
    await gone;
    await end(backend);
  });

  it('replaces a worker that dies', async () => {
    const victim = listening()[0]!;
    process.kill(Number(victim.pid), 'SIGKILL');
    await eventually(() => serve.logs.some((e) => e.event === 'worker_exited' && e.pid === victim.pid), 5000, 'the primary saw the worker die');
    await eventually(() => listening().length === 3, 20_000, 'a new worker listening');
    const ready = await httpsRequest(`${serve.apiUrl}/readyz`, ca);
    assert.equal(ready.status, 200);
  });
});
