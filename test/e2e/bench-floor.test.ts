// The reference servers of `npm run bench -- floor` answer a real device over real mutual TLS,
// with the fleet's PKI, as the brokers beside them do; and stop when told.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startFloorServer, type FloorKind } from '../../firmware-sim/bench/floor.js';
import { withIntermediates } from '../../provisioning/pki/served-chain.js';
import { startFleet, type EnrolledDevice, type TestFleet } from '../support/fleet.js';
import { mqttOptions, tryConnect } from '../support/mqtt.js';

describe('benchmark floor servers', { timeout: 60_000 }, () => {
  let fleet: TestFleet;
  let device: EnrolledDevice;
  let pki: { caBundlePem: string; serverCertPem: string; serverKeyPem: string };
  before(async () => {
    fleet = await startFleet();
    device = await fleet.enroll('floor-1');
    const dir = join(fleet.dir, 'pki');
    pki = { caBundlePem: fleet.ca, serverCertPem: withIntermediates(await readFile(join(dir, 'server.pem'), 'utf8'), fleet.ca), serverKeyPem: await readFile(join(dir, 'server.key'), 'utf8') };
  });
  after(() => fleet.close());

  for (const kind of ['node-tls', 'aedes'] as FloorKind[]) {
    it(`${kind}: accepts a device's mutual-TLS CONNECT, and stops`, async () => {
      const server = await startFloorServer(kind, pki);
      try {
        const outcome = await tryConnect(mqttOptions(Number(new URL(server.mqttUrl).port), fleet.ca, device));
        assert.equal(outcome.returnCode, 0, outcome.error?.message);
        outcome.client.end(true);
      } finally {
        await server.stop();
      }
      assert.throws(() => process.kill(server.pid, 0), { code: 'ESRCH' });
    });
  }
});
