// The benchmark's rounds: each revokes some connected devices, and the next round must not
// try to connect them again. Connections complete in the order the broker answers, not the
// pool's (connectAll runs 64 at once), so the devices revoked are known by id: taking "the
// pool's first N" instead left a few revoked devices in the pool, which our broker then
// rightly refused (certificate_revoked, CONNACK 5) in the next round.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { ApiClient } from '../../firmware-sim/api-client.js';
import { revokeEach, withoutRevoked, type Connected } from '../../firmware-sim/bench/load.js';
import type { BenchDevice } from '../../firmware-sim/bench/fleet.js';

const device = (id: string) => ({ id, serial: id }) as unknown as BenchDevice;

/** A connection whose client closes when its device is revoked, as the broker closes it. */
function connection(d: BenchDevice): Connected & { client: EventEmitter } {
  const c = { device: d, client: new EventEmitter() } as unknown as Connected & { client: EventEmitter };
  c.client.once('close', () => (c.closedAt = performance.now()));
  return c;
}

describe('benchmark rounds and revocation', () => {
  it('removes from the pool exactly the devices revoked, whatever order their connections completed in', async () => {
    const pool = ['d0', 'd1', 'd2', 'd3', 'd4'].map(device);
    // Completion order of connectAll: d2 answered before d1.
    const connected = [pool[2]!, pool[0]!, pool[1]!, pool[4]!, pool[3]!].map(connection);
    const asked: string[] = [];
    const api = {
      revokeDevice(id: string) {
        asked.push(id);
        connected.find((c) => c.device.id === id)!.client.emit('close');
        return Promise.resolve({});
      },
    } as unknown as ApiClient;

    const times = await revokeEach(api, connected.slice(0, 2));

    assert.deepEqual(asked, ['d2', 'd0']);
    assert.deepEqual(times.deviceIds, ['d2', 'd0']);
    assert.deepEqual(
      withoutRevoked(pool, times).map((d) => d.id),
      ['d1', 'd3', 'd4'],
      'd2 is revoked and must not be connected again; d1 is not and stays',
    );
  });

  it('keeps the whole pool when nothing was revoked (Mosquitto only, or --revoke 0)', () => {
    const pool = ['d0', 'd1'].map(device);
    assert.deepEqual(withoutRevoked(pool, undefined), pool);
  });
});
