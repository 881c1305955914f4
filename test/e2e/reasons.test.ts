// One end-to-end scenario for every reason in the catalogue, over real mutual TLS: each
// asserts its reason in the structured event and in fleet_refusals_total. The table must
// cover the catalogue exactly, so a new reason cannot ship untested.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ALL_REASONS, REASONS, type Reason } from '../../broker/reasons.js';
import { DEFAULT_BROKER_OPTIONS } from '../../bin/service.js';
import { generateKeyPair } from '../../provisioning/pki/keys.js';
import { openSqliteStore } from '../../registry/sqlite.js';
import { x509 } from '../../provisioning/pki/x509.js';
import {
  corruptedSignatureDevice,
  deviceSignedBy,
  expiredDevice,
  foreignCaDevice,
  notYetValidDevice,
  rootCa,
  serverCertAsClient,
  unregisteredClaim,
  unregisteredDevice,
} from '../support/fixtures.js';
import { claimIdentity, ClaimSession, createBatch, CREATE, type ClaimBatchIdentity } from '../support/claims.js';
import { enrollDevice, startFleet, type TestFleet } from '../support/fleet.js';
import { ecKeyWithCsr } from '../support/keys.js';
import { closed, end, subackCodes, tryConnect, mqttOptions } from '../support/mqtt.js';
import { publishPacket, rawConnect } from '../support/raw-mqtt.js';
import { postgresSchema } from '../support/stores.js';
import { eventually } from '../support/wait.js';

/** What each scenario produces; `match` narrows the event (a client id, usually). */
type Scenario = (fleets: Fleets) => Promise<{ fleet: TestFleet; match: Record<string, unknown> }>;
interface Fleets {
  main: TestFleet;
  abuse: TestFleet;
  postgres: TestFleet;
}

/** Sends claim requests on one claim session; the last one must be rejected. */
async function claimRejected(fleet: TestFleet, claim: ClaimBatchIdentity, requests: [string, unknown][]): Promise<void> {
  const session = await ClaimSession.open(fleet, claim, 'x', { replies: [`${CREATE}/accepted`, `${CREATE}/rejected`] });
  let last;
  for (const [topic, payload] of requests) last = await session.request(topic, payload);
  assert.equal(last?.accepted, false, 'rejected');
  await session.end();
}

/** A CONNECT refused with CONNACK 5 (not authorized): the code a device does not retry on. */
async function refusedConnect(fleet: TestFleet, identity: Parameters<TestFleet['tryConnect']>[0], extra = {}): Promise<void> {
  const outcome = await fleet.tryConnect(identity, extra);
  assert.equal(outcome.returnCode, 5, 'refused with CONNACK 5');
  await end(outcome.client);
}

const scenarios: Record<Reason, Scenario> = {
  async no_client_certificate({ main }) {
    await refusedConnect(main, { id: 'r-nocert' });
    return { fleet: main, match: { clientId: 'r-nocert' } };
  },
  async unknown_issuer({ main }) {
    await refusedConnect(main, await foreignCaDevice('r-foreign'));
    return { fleet: main, match: { clientId: 'r-foreign' } };
  },
  async chain_incomplete({ main }) {
    // A CA this node's trust does not hold yet, though the registry has it (written by
    // another node, say): its devices are a missing link, not strangers.
    const root = await rootCa(main);
    const keys = await generateKeyPair();
    const issued = await root.issueIssuingCa([{ CN: ['Late CA'] }], await x509.PublicKey.create(keys.publicKey), { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000) }, { pathLength: 0 });
    const store = await openSqliteStore(join(main.dir, 'registry.db'));
    await store.cas.insert({ id: 'late', name: 'late', parentId: 'root', subject: issued.certificate.subject, serial: issued.serial, keyId: 'late', pem: issued.pem, notBefore: issued.notBefore, notAfter: issued.notAfter, status: 'ACTIVE', external: false, createdAt: new Date() });
    await store.close();
    const { CaSigner } = await import('../../provisioning/pki/signer.js');
    await refusedConnect(main, await deviceSignedBy(await CaSigner.create(issued.certificate, keys.privateKey), 'r-late'));
    return { fleet: main, match: { clientId: 'r-late' } };
  },
  async certificate_expired({ main }) {
    await refusedConnect(main, await expiredDevice(main, 'r-expired'));
    return { fleet: main, match: { clientId: 'r-expired' } };
  },
  async certificate_not_yet_valid({ main }) {
    await refusedConnect(main, await notYetValidDevice(main, 'r-early'));
    return { fleet: main, match: { clientId: 'r-early' } };
  },
  async wrong_key_usage({ main }) {
    await refusedConnect(main, await serverCertAsClient(main, 'r-server'));
    return { fleet: main, match: { clientId: 'r-server' } };
  },
  async certificate_invalid({ main }) {
    await refusedConnect(main, await corruptedSignatureDevice(main, 'r-corrupt'));
    return { fleet: main, match: { clientId: 'r-corrupt' } };
  },
  async client_id_mismatch({ main }) {
    await refusedConnect(main, { ...(await main.enroll('r-honest')), id: 'r-victim' });
    return { fleet: main, match: { clientId: 'r-victim' } };
  },
  async unregistered_certificate({ main }) {
    await refusedConnect(main, await unregisteredDevice(main, 'r-ghost'));
    return { fleet: main, match: { clientId: 'r-ghost' } };
  },
  async certificate_revoked({ main }) {
    const device = await main.enroll('r-revoked');
    await main.api(`/v1/certificates/${device.serial}/revoke`, { method: 'POST' });
    await refusedConnect(main, device);
    return { fleet: main, match: { clientId: 'r-revoked' } };
  },
  async certificate_inactive({ main }) {
    const device = await main.enroll('r-inactive');
    await main.api(`/v1/certificates/${device.serial}/deactivate`, { method: 'POST' });
    await refusedConnect(main, device);
    return { fleet: main, match: { clientId: 'r-inactive' } };
  },
  async device_disabled({ main }) {
    const device = await main.enroll('r-disabled');
    await main.api('/v1/devices/r-disabled/disable', { method: 'POST' });
    await refusedConnect(main, device);
    return { fleet: main, match: { clientId: 'r-disabled' } };
  },
  async registry_unavailable({ postgres }) {
    // Enrolled but never seen by the broker, so nothing is cached; then the database goes.
    const device = await postgres.enroll('r-nodb');
    await (postgres as TestFleet & { dropDatabase(): Promise<void> }).dropDatabase();
    const outcome = await postgres.tryConnect(device);
    assert.equal(outcome.returnCode, 3, 'CONNACK 3: server unavailable, try later');
    await end(outcome.client);
    return { fleet: postgres, match: { clientId: 'r-nodb' } };
  },
  async throttled({ abuse }) {
    const device = await abuse.enroll('r-hasty');
    await end(await abuse.connect(device));
    await end(await abuse.connect(device));
    const third = await abuse.tryConnect(device);
    assert.equal(third.returnCode, 3);
    await end(third.client);
    return { fleet: abuse, match: { clientId: 'r-hasty' } };
  },
  async banned({ abuse }) {
    const device = await abuse.enroll('r-loop');
    for (let i = 0; i < 8; i++) {
      const outcome = await abuse.tryConnect(device);
      await end(outcome.client);
    }
    return { fleet: abuse, match: { clientId: 'r-loop' } };
  },
  async keepalive_out_of_bounds({ main }) {
    await refusedConnect(main, await main.enroll('r-keepalive'), { keepalive: 0 });
    return { fleet: main, match: { clientId: 'r-keepalive' } };
  },
  async connect_timeout({ main }) {
    // The handshake completes; no CONNECT follows.
    const device = await main.enroll('r-silent');
    const socket = tls.connect({ host: '127.0.0.1', port: main.service.mqttPort, ca: main.ca, key: device.keyPem, cert: device.certPem });
    await once(socket, 'secureConnect');
    await once(socket, 'close');
    return { fleet: main, match: { serial: device.serial } };
  },
  async topic_denied({ main }) {
    const client = await main.connect(await main.enroll('r-nosy'));
    assert.deepEqual(await subackCodes(client, { 'devices/someone/#': { qos: 0 } }), [0x80]);
    await end(client);
    return { fleet: main, match: { clientId: 'r-nosy' } };
  },
  async too_many_subscriptions({ main }) {
    const client = await main.connect(await main.enroll('r-greedy'));
    const codes = await subackCodes(client, { 'devices/r-greedy/a': { qos: 0 }, 'devices/r-greedy/b': { qos: 0 }, 'devices/r-greedy/c': { qos: 0 }, 'devices/r-greedy/d': { qos: 0 } });
    assert.deepEqual(codes, [0, 0, 0, 0x80]);
    await end(client);
    return { fleet: main, match: { clientId: 'r-greedy' } };
  },
  async packet_too_large({ main }) {
    const device = await main.enroll('r-big');
    const client = await main.connect(device);
    const gone = closed(client);
    client.publish('devices/r-big/blob', Buffer.alloc(8192));
    await gone;
    return { fleet: main, match: { serial: device.serial } };
  },
  async publish_rate_exceeded({ main }) {
    const device = await main.enroll('r-flood');
    const socket = await rawConnect(main.service.mqttPort, main.ca, device);
    socket.write(Buffer.concat(Array.from({ length: 60 }, (_, i) => publishPacket('devices/r-flood/t', String(i)))));
    await once(socket, 'close');
    return { fleet: main, match: { clientId: 'r-flood' } };
  },
  async protocol_violation({ main }) {
    const device = await main.enroll('r-garbled');
    const socket = await rawConnect(main.service.mqttPort, main.ca, device);
    socket.write(Buffer.from([0x60, 0x02, 0x00, 0x01])); // PUBREL with the wrong header flags
    await once(socket, 'close');
    return { fleet: main, match: { clientId: 'r-garbled' } };
  },
  async claim_batch_unknown({ main }) {
    await refusedConnect(main, claimIdentity(await unregisteredClaim(main, 'r-nobatch'), 'x'));
    return { fleet: main, match: { clientId: 'claim/r-nobatch/x' } };
  },
  async claim_batch_revoked({ main }) {
    const claim = await createBatch(main, 'r-revoked-batch');
    await main.api('/v1/claim-batches/r-revoked-batch/revoke', { method: 'POST' });
    await refusedConnect(main, claimIdentity(claim, 'x'));
    return { fleet: main, match: { clientId: 'claim/r-revoked-batch/x' } };
  },
  async claim_session_invalid({ main }) {
    await refusedConnect(main, { ...claimIdentity(await createBatch(main, 'r-shape'), 'x'), id: 'r-claim-as-device' });
    return { fleet: main, match: { clientId: 'r-claim-as-device' } };
  },
  async claim_request_invalid({ main }) {
    await claimRejected(main, await createBatch(main, 'r-garbage'), [[CREATE, 'not json']]);
    return { fleet: main, match: { clientId: 'claim/r-garbage/x' } };
  },
  async claim_rate_limited({ main }) {
    await claimRejected(main, await createBatch(main, 'r-rate', { rateLimit: { perSecond: 0.01, burst: 1 } }), [
      [CREATE, 'not json'],
      [CREATE, 'not json'],
    ]);
    return { fleet: main, match: { clientId: 'claim/r-rate/x' } };
  },
  async claim_replayed({ main }) {
    const csr = (await ecKeyWithCsr()).csrPem;
    await claimRejected(main, await createBatch(main, 'r-replay'), [
      [CREATE, { csr, parameters: { SerialNumber: '00000001' } }],
      [CREATE, { csr, parameters: { SerialNumber: '00000002' } }],
    ]);
    return { fleet: main, match: { clientId: 'claim/r-replay/x' } };
  },
  async claim_identity_refused({ main }) {
    await main.api('/v1/devices', { body: { id: 'sensor-0000000A' } });
    await claimRejected(main, await createBatch(main, 'r-identity'), [[CREATE, { csr: (await ecKeyWithCsr()).csrPem, parameters: { SerialNumber: '0000000A' } }]]);
    return { fleet: main, match: { clientId: 'claim/r-identity/x' } };
  },
  async claim_hook_refused({ main }) {
    // A hook nobody listens on: the connection is refused, so is the claim.
    const server = net.createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const claim = await createBatch(main, 'r-hook', { hook: { url: `http://127.0.0.1:${port}/`, timeoutMs: 1000 } });
    await claimRejected(main, claim, [[CREATE, { csr: (await ecKeyWithCsr()).csrPem, parameters: { SerialNumber: '0000000B' } }]]);
    return { fleet: main, match: { clientId: 'claim/r-hook/x' } };
  },
  async claim_unavailable({ main }) {
    // The registry fails while recording the claim (as a full disk would).
    const claim = await createBatch(main, 'r-broken');
    const db = new Database(join(main.dir, 'registry.db'));
    db.exec(`CREATE TRIGGER r_broken BEFORE INSERT ON claim_certificates WHEN NEW.batch_id = 'r-broken' BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END`);
    db.close();
    await claimRejected(main, claim, [[CREATE, { csr: (await ecKeyWithCsr()).csrPem, parameters: { SerialNumber: '0000000C' } }]]);
    return { fleet: main, match: { clientId: 'claim/r-broken/x' } };
  },
  async tls_handshake_failed({ main }) {
    // Not TLS at all: an HTTP request to the MQTT port.
    const socket = net.connect(main.service.mqttPort, '127.0.0.1');
    await once(socket, 'connect');
    socket.end('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(socket, 'close');
    return { fleet: main, match: {} };
  },
  async handshake_timeout({ main }) {
    // A TCP connection that never starts the handshake.
    const socket = net.connect(main.service.mqttPort, '127.0.0.1');
    await once(socket, 'connect');
    await once(socket, 'close');
    return { fleet: main, match: {} };
  },
};

describe('every refusal reason, end to end', { timeout: 120_000 }, () => {
  const fleets = {} as Fleets;
  let schema: { url: string; drop(): Promise<void> };
  before(async () => {
    fleets.main = await startFleet({
      broker: {
        maxPacketBytes: 4096,
        publish: { ratePerSecond: 20, burst: 5, maxBacklogMs: 1000 },
        maxSubscriptions: 3,
        handshakeTimeoutMs: 500,
        connectTimeoutMs: 500,
      },
    });
    fleets.abuse = await startFleet({
      broker: { abuse: { ...DEFAULT_BROKER_OPTIONS.abuse, perClientId: { ratePerSecond: 1, burst: 2 }, ban: { afterThrottled: 3, windowMs: 60_000, durationMs: 60_000 } } },
    });
    schema = await postgresSchema();
    fleets.postgres = Object.assign(await startFleet({ database: schema.url }), { dropDatabase: () => schema.drop() });
  });
  after(async () => {
    await Promise.all([fleets.main.close(), fleets.abuse.close(), fleets.postgres.close()]);
  });

  it('has a scenario for every reason in the catalogue, and none for a reason it lacks', () => {
    assert.deepEqual(Object.keys(scenarios).sort(), [...ALL_REASONS].sort());
  });

  for (const reason of ALL_REASONS) {
    it(reason, async () => {
      const all = [fleets.main, fleets.abuse, fleets.postgres];
      const before = await Promise.all(all.map((f) => f.refusals(reason)));
      const { fleet, match } = await scenarios[reason](fleets);
      const event = await fleet.logs.waitFor('refusal', { reason, ...match });
      assert.equal(event.level, 40, 'a warning');
      assert.equal(event.stage, REASONS[reason].stage);
      const counted = before[all.indexOf(fleet)]! + 1;
      await eventually(async () => (await fleet.refusals(reason)) >= counted, 3000, `fleet_refusals_total{reason="${reason}"} counted`);
    });
  }

  it('lifts a ban by hand, and admits the device again', async () => {
    const { abuse } = fleets;
    const bans = await abuse.api('/v1/broker/bans');
    assert.ok(bans.json.bans.some((b: { clientId: string }) => b.clientId === 'r-loop'));
    const lifted = await abuse.api('/v1/broker/bans/r-loop', { method: 'DELETE' });
    assert.equal(lifted.json.lifted, 1);
    const device = await enrollDevice(abuse.service.apiUrl, abuse.ca, abuse.token, 'r-loop-2');
    await end(await tryConnect(mqttOptions(abuse.service.mqttPort, abuse.ca, device)).then((o) => o.client));
    assert.equal((await abuse.api('/v1/audit?actor=operator:admin&limit=500')).json.entries.some((e: { action: string }) => e.action === 'broker.unbanned'), true);
  });
});
