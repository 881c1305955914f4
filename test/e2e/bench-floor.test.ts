// The reference servers of `npm run bench -- floor` answer a real device over real mutual TLS,
// with the fleet's PKI, as the brokers beside them do; and stop when told.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFloorServer, type FloorKind } from '../../firmware-sim/bench/floor.js';
import { readServerPki, type ServerPki } from '../../firmware-sim/bench/server-pki.js';
import { startFleet, type EnrolledDevice, type TestFleet } from '../support/fleet.js';
import { mqttOptions, tryConnect } from '../support/mqtt.js';

describe('benchmark floor servers', { timeout: 60_000 }, () => {
  let fleet: TestFleet;
  let device: EnrolledDevice;
  let pki: ServerPki;
  before(async () => {
    fleet = await startFleet();
    device = await fleet.enroll('floor-1');
    pki = await readServerPki(fleet.dir, fleet.ca);
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
