// Two service nodes writing to one PostgreSQL registry at the same moment, as a cluster does:
// each node here is a Registry with its own connection pool on the same schema. Whatever
// the interleaving, a key is certified for one device only and a CA name is taken once; the
// loser gets the coded error, never a database error.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CodedError } from '../../registry/errors.js';
import { InProcessEventBus } from '../../registry/events.js';
import type { DeviceId, Fingerprint, SerialHex } from '../../registry/ids.js';
import type { NewCertificate } from '../../registry/lifecycle.js';
import { openPostgresStore } from '../../registry/postgres.js';
import { Registry } from '../../registry/registry.js';
import type { KyselyRegistryStore } from '../../registry/store.js';
import { testCa } from '../support/records.js';
import { postgresSchema } from '../support/stores.js';

const operator = { kind: 'operator', id: 'admin' } as const;
const ROUNDS = 20;
let n = 0;

function certificate(deviceId: string, key: string): NewCertificate {
  const serial = (0x20000 + ++n).toString(16).padStart(32, '0') as SerialHex;
  return {
    serial,
    fingerprint: serial.padEnd(64, 'e') as Fingerprint,
    publicKeySha256: key,
    deviceId: deviceId as DeviceId,
    caId: 'default',
    notBefore: new Date('2026-01-01'),
    notAfter: new Date('2027-06-01'),
    pem: '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n',
  };
}

/** 'ok', or the code of the coded error; anything else fails the test. */
async function outcome(work: Promise<unknown>): Promise<string> {
  try {
    await work;
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof CodedError, `not a coded error: ${String(error)}`);
    return (error as CodedError).code;
  }
}

describe('PostgreSQL: two nodes racing', { timeout: 60_000 }, () => {
  let schema: Awaited<ReturnType<typeof postgresSchema>>;
  let stores: KyselyRegistryStore[];
  let nodes: Registry[];
  before(async () => {
    schema = await postgresSchema();
    stores = [await openPostgresStore(schema.url, { maxConnections: 4 }), await openPostgresStore(schema.url, { maxConnections: 4 })];
    nodes = stores.map((store) => new Registry({ store, bus: new InProcessEventBus(), clock: () => new Date('2026-06-01T12:00:00.000Z') }));
    await nodes[0]!.authorities.record(testCa('root'), operator);
    await nodes[0]!.authorities.record(testCa('default', 'root'), operator);
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await schema.drop();
  });

  it('certifies one key for one device only: the other enrollment is public_key_in_use', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const [a, b] = [`race-a-${round}`, `race-b-${round}`];
      await nodes[0]!.lifecycle.createDevice({ id: a as DeviceId }, operator);
      await nodes[0]!.lifecycle.createDevice({ id: b as DeviceId }, operator);
      const key = `shared-key-${round}`;
      const outcomes = await Promise.all([outcome(nodes[0]!.lifecycle.recordCertificate(certificate(a, key), operator)), outcome(nodes[1]!.lifecycle.recordCertificate(certificate(b, key), operator))]);
      assert.deepEqual(outcomes.sort(), ['ok', 'public_key_in_use'], `round ${round}`);
      assert.equal(new Set((await stores[0]!.certificates.withPublicKey(key)).map((c) => c.deviceId)).size, 1, `round ${round}`);
    }
  });

  it('lets one device enroll on two nodes at once, with the same key or different ones', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const id = `race-one-${round}`;
      await nodes[0]!.lifecycle.createDevice({ id: id as DeviceId }, operator);
      const same = `own-key-${round}`;
      const outcomes = await Promise.all([
        outcome(nodes[0]!.lifecycle.recordCertificate(certificate(id, same), operator)),
        outcome(nodes[1]!.lifecycle.recordCertificate(certificate(id, same), operator)),
        outcome(nodes[1]!.lifecycle.recordCertificate(certificate(id, `other-key-${round}`), operator)),
      ]);
      assert.deepEqual(outcomes, ['ok', 'ok', 'ok'], `round ${round}`);
    }
  });

  it('records a CA name once: the other is ca_exists', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const id = `plant-${round}`;
      const outcomes = await Promise.all(nodes.map((node) => outcome(node.authorities.record(testCa(id, 'root'), operator))));
      assert.deepEqual(outcomes.sort(), ['ca_exists', 'ok'], `round ${round}`);
    }
  });
});
