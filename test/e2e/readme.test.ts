// The README's walkthrough, run as written (openssl, curl, jq and the mosquitto clients)
// against a real `fleet serve`, so the commands a newcomer copies keep working.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { spawnServe, type ServeProcess } from '../support/process.js';

const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8');

function walkthrough(): string {
  const section = readme.split('<!-- walkthrough:start -->')[1]?.split('<!-- walkthrough:end -->')[0];
  const script = section?.match(/```sh\n([\s\S]*?)```/)?.[1];
  if (!script) throw new Error('README has no walkthrough block');
  return script;
}

describe('README walkthrough', { timeout: 90_000 }, () => {
  let work: string;
  let serve: ServeProcess;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'fleet-readme-'));
    // With the defaults `npm start` uses: the walkthrough must work as a newcomer pastes it.
    serve = await spawnServe(join(work, 'data'));
  });
  after(async () => {
    await serve.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('runs as written and does what it says', async () => {
    const env = { ...process.env, DATA: './data', API: `https://localhost:${new URL(serve.apiUrl).port}`, MQTT_PORT: String(serve.mqttPort) };
    const { stdout, stderr } = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', walkthrough()], { cwd: work, env });
    const out = stdout + stderr;

    const enrolled = JSON.parse(await readFile(join(work, 'thermostat-42.json'), 'utf8'));
    assert.match(out, /"id":"thermostat-42","status":"ACTIVE"/);
    assert.match(out, /thermostat-42\.pem: OK/);
    assert.match(out, /^devices\/thermostat-42\/config \{"setpoint": 21\}$/m);
    assert.match(out, /All subscription requests were denied/);
    assert.match(out, /refused: client_id_mismatch/);
    assert.match(out, /\{"id":"thermostat-42","status":"DECOMMISSIONED","connected":false\}/);
    assert.match(out, /refused: certificate_revoked/);
    assert.match(out, new RegExp(`Serial Number: ${enrolled.serial.toUpperCase()}`));
    for (const [reason, stage] of [['topic_denied', 'subscribe'], ['client_id_mismatch', 'connect'], ['certificate_revoked', 'connect']]) {
      assert.match(out, new RegExp(`fleet_refusals_total\\{reason="${reason}",stage="${stage}"\\} 1`));
    }
    const refusals = (await serve.logsWritten()).filter((e) => e.event === 'refusal').map((e) => e.reason);
    assert.deepEqual(refusals, ['topic_denied', 'client_id_mismatch', 'certificate_revoked']);
  });
});
