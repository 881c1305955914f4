// Fleet provisioning by claim, end to end over real mutual TLS with real mqtt.js clients: a
// claim batch created through the API, claim sessions confined to the claim topics, a device
// turning the claim into its own identity (create-from-csr, register, reconnect as itself),
// the pre-provisioning hook against a real local HTTP server, and every refusal by its code.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RENEW_ACCEPTED, RENEW_REJECTED, RENEW_TOPIC } from '../../broker/fleet-topics/renew.js';
import { x509 } from '../../provisioning/pki/x509.js';
import { claimIdentity, ClaimSession, createBatch, CREATE, errorCode, REGISTER, SENSOR_TEMPLATE, type ClaimBatchIdentity } from '../support/claims.js';
import { startFleet, type TestFleet } from '../support/fleet.js';
import { ecKeyWithCsr } from '../support/keys.js';
import { closed, end, subackCodes } from '../support/mqtt.js';
import { eventually } from '../support/wait.js';

describe('fleet provisioning by claim', { timeout: 120_000 }, () => {
  let fleet: TestFleet;
  let work: string;
  let claim: ClaimBatchIdentity;
  // The service clock; a test moves it past a claim certificate's notAfter.
  let offset = 0;
  before(async () => {
    fleet = await startFleet({ clock: () => new Date(Date.now() + offset) });
    work = mkdtempSync(join(tmpdir(), 'claims-test-'));
    assert.equal((await fleet.api('/v1/groups', { body: { id: 'sensors', policy: { publish: ['fleet/telemetry/${deviceId}'], subscribe: [] } } })).status, 201);
    claim = await createBatch(fleet, 'line-7', { template: { ...SENSOR_TEMPLATE, groups: ['sensors'] } });
  });
  after(async () => {
    await fleet.close();
    rmSync(work, { recursive: true, force: true });
  });

  const file = (name: string, content: string | Buffer) => {
    writeFileSync(join(work, name), content);
    return join(work, name);
  };
  let serials = 0x10000000;
  const serialNumber = () => (++serials).toString(16).toUpperCase();
  const refusal = (match: Record<string, unknown>) => fleet.logs.waitFor('refusal', match);

  describe('claim batches', () => {
    it('issues the claim certificate once with its key: a TLS client that can never pass for a device', async () => {
      const created = await fleet.api('/v1/claim-batches', { body: { name: 'line-8', template: SENSOR_TEMPLATE, validitySeconds: 3600, rateLimit: { perSecond: 5, burst: 10 } } });
      assert.equal(created.status, 201);
      assert.deepEqual([created.json.status, created.json.clientIdPrefix, created.json.ca, created.json.rateLimit], ['ACTIVE', 'claim/line-8/', 'default', { perSecond: 5, burst: 10 }]);
      assert.match(created.json.key, /BEGIN PRIVATE KEY/);
      const cert = new x509.X509Certificate(created.json.certificate);
      assert.deepEqual(cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON(), [{ type: 'url', value: 'urn:fleet:claim:line-8' }]);
      assert.equal(cert.subject, 'CN=Fleet claim line-8, O=Fleet Identity');
      assert.ok(cert.notAfter.getTime() - cert.notBefore.getTime() <= 3600_000 + 60_000, 'short-lived');
      assert.match(execFileSync('openssl', ['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', file('bundle.pem', fleet.ca), file('claim.pem', created.json.certificate)], { encoding: 'utf8' }), /: OK/);
      // Returned once: reading the batch gives the certificate, never the key.
      const read = await fleet.api('/v1/claim-batches/line-8');
      assert.equal(read.json.key, undefined);
      assert.deepEqual(read.json.certificates, { issued: 0, registered: 0 });
      assert.ok((await fleet.api('/v1/claim-batches')).json.batches.some((b: { id: string }) => b.id === 'line-8'));
    });

    it('certifies a key of the operator’s own instead, from a CSR', async () => {
      const key = await ecKeyWithCsr('whatever');
      const created = await fleet.api('/v1/claim-batches', { body: { name: 'line-9', template: SENSOR_TEMPLATE, csr: key.csrPem } });
      assert.equal(created.status, 201);
      assert.equal(created.json.key, undefined);
      const again = await fleet.api('/v1/claim-batches', { body: { name: 'line-10', template: SENSOR_TEMPLATE, csr: key.csrPem } });
      assert.deepEqual([again.status, again.json.error.code], [409, 'public_key_in_use']);
    });

    it('refuses bad batches with their codes', async () => {
      const cases: [unknown, number, string][] = [
        [{ name: 'line-7', template: SENSOR_TEMPLATE }, 409, 'claim_batch_exists'],
        [{ name: 'no spaces', template: SENSOR_TEMPLATE }, 400, 'invalid_batch_id'],
        [{ name: 'b1', template: { deviceId: 'sensor', parameters: {} } }, 400, 'template_invalid'],
        [{ name: 'b2', template: { deviceId: 'sensor-${Serial}', parameters: {} } }, 400, 'template_invalid'],
        [{ name: 'b3', template: { deviceId: 'sensor/${S}', parameters: { S: {} } } }, 400, 'template_invalid'],
        [{ name: 'b4', template: { deviceId: 'x-${S}', parameters: { S: { pattern: '([' } } } }, 400, 'template_invalid'],
        [{ name: 'b5', template: { ...SENSOR_TEMPLATE, groups: ['nope'] } }, 404, 'group_not_found'],
        [{ name: 'b6', template: SENSOR_TEMPLATE, validitySeconds: 365 * 86400 }, 400, 'invalid_body'],
        [{ name: 'b7', template: SENSOR_TEMPLATE, csr: 'not a csr' }, 400, 'csr_malformed'],
      ];
      for (const [body, status, code] of cases) {
        const answer = await fleet.api('/v1/claim-batches', { body });
        assert.deepEqual([answer.status, answer.json.error.code], [status, code], JSON.stringify(body));
      }
      assert.deepEqual((await fleet.api('/v1/claim-batches/nope')).json.error.code, 'claim_batch_not_found');
    });
  });

  describe('a device provisioning itself', () => {
    it('turns the claim into its own identity: create-from-csr, register, reconnect as itself', async () => {
      const session = await ClaimSession.open(fleet, claim, 'unit-1');
      const key = await ecKeyWithCsr('CN=admin,O=Evil');
      const created = await session.createFromCsr(key.csrPem, { SerialNumber: 'C0FFEE01', Model: 'M2' });
      assert.equal(created.accepted, true, JSON.stringify(created.body));
      assert.equal(created.topic, `${CREATE}/accepted`);
      const { deviceId, serial, certificate, chain } = created.body;
      assert.deepEqual([deviceId, created.body.status], ['sensor-C0FFEE01', 'PENDING_ACTIVATION']);
      // Invariant 4: the certificate names the registry's device, not what the CSR asked for.
      assert.equal(new x509.X509Certificate(certificate).subject, 'CN=sensor-C0FFEE01');
      assert.match(execFileSync('openssl', ['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', file('chain.pem', chain), file('device.pem', certificate)], { encoding: 'utf8' }), /: OK/);
      const identity = { id: deviceId as string, keyPem: key.keyPem, certPem: certificate as string };

      // Not admissible before it is registered.
      const early = await fleet.tryConnect(identity);
      assert.equal(early.returnCode, 5);
      await end(early.client);
      assert.equal((await refusal({ clientId: deviceId })).reason, 'certificate_inactive');

      const registered = await session.register(deviceId, serial);
      assert.equal(registered.accepted, true, JSON.stringify(registered.body));
      assert.deepEqual(registered.body, { deviceId, serial, status: 'ACTIVE', attributes: { model: 'M2', line: 'L7' }, groups: ['sensors'] });
      await session.end();

      const view = await fleet.api(`/v1/devices/${deviceId}`);
      assert.deepEqual([view.json.attributes, view.json.groups, view.json.certificates[0].status], [{ model: 'M2', line: 'L7' }, ['sensors'], 'ACTIVE']);
      const device = await fleet.connect(identity);
      const echo = new Promise<string>((resolve) => device.once('message', (_t, p) => resolve(p.toString())));
      await device.subscribeAsync(`devices/${deviceId}/#`);
      await device.publishAsync(`devices/${deviceId}/hello`, 'provisioned');
      assert.equal(await echo, 'provisioned');
      await device.publishAsync(`fleet/telemetry/${deviceId}`, 'granted by the template’s group');
      await end(device);

      const audit = (await fleet.api(`/v1/audit?device=${deviceId}`)).json.entries.map((e: { action: string; actor: string }) => `${e.actor} ${e.action}`);
      assert.ok(audit.includes('claim:line-7/unit-1 certificate.issued'), audit.join('\n'));
      assert.ok(audit.includes('claim:line-7/unit-1 claim.registered'), audit.join('\n'));
      assert.deepEqual((await fleet.api('/v1/claim-batches/line-7')).json.certificates, { issued: 1, registered: 1 });
    });

    it('lets a device that lost its answer claim again: the pending certificate it never registered is superseded', async () => {
      const serialNo = serialNumber();
      const first = await ClaimSession.open(fleet, claim, 'retry-1');
      const lost = await first.createFromCsr((await ecKeyWithCsr()).csrPem, { SerialNumber: serialNo });
      assert.equal(lost.accepted, true);
      await first.end();
      const second = await ClaimSession.open(fleet, claim, 'retry-1');
      const kept = await second.createFromCsr((await ecKeyWithCsr()).csrPem, { SerialNumber: serialNo });
      assert.equal(kept.accepted, true, JSON.stringify(kept.body));
      assert.equal((await fleet.api(`/v1/certificates/${lost.body.serial}`)).json.status, 'REVOKED');
      assert.equal((await second.register(kept.body.deviceId, kept.body.serial)).accepted, true);
      // A superseded certificate cannot be registered any more.
      const stale = await second.register(lost.body.deviceId, lost.body.serial);
      assert.deepEqual([stale.accepted, stale.body.error.code], [false, 'certificate_revoked']);
      await second.end();
    });
  });

  describe('confinement', () => {
    it('lets a claim session subscribe only to its replies, and closes it when it publishes elsewhere', async () => {
      const session = await ClaimSession.open(fleet, claim, 'confined-1');
      assert.deepEqual(await subackCodes(session.client, { 'devices/#': { qos: 0 }, '$fleet/#': { qos: 0 }, [CREATE]: { qos: 0 }, [`${REGISTER}/accepted`]: { qos: 0 } }), [0x80, 0x80, 0x80, 0]);
      const gone = closed(session.client);
      session.client.publish('devices/sensor-C0FFEE01/telemetry', 'spoofed');
      await gone;
      assert.equal((await refusal({ clientId: 'claim/line-7/confined-1', topic: 'devices/sensor-C0FFEE01/telemetry' })).reason, 'topic_denied');
    });

    it('refuses the claim certificate on every way in but the claim topics: the API, EST, the renewal topic and device topics', async () => {
      const asClaim = { cert: claim.certPem, key: claim.keyPem, anonymous: true };
      const csr = (await ecKeyWithCsr()).csrPem;
      const pkcs10 = { ...asClaim, raw: Buffer.from(csr.replace(/-----[^-]+-----|\s/g, ''), 'base64').toString('base64'), headers: { 'content-type': 'application/pkcs10' } };
      const calls = [
        await fleet.api('/v1/renew', { ...asClaim, body: { csr } }),
        await fleet.api('/v1/devices/sensor-C0FFEE01', asClaim),
        await fleet.api('/v1/devices', { ...asClaim, body: { id: 'claim-made' } }),
        await fleet.api('/.well-known/est/simplereenroll', { ...pkcs10, method: 'POST' }),
        await fleet.api('/.well-known/est/simpleenroll', { ...pkcs10, method: 'POST' }),
      ];
      assert.deepEqual(calls.map((r): [number, unknown] => [r.status, r.json?.error?.code]), Array(calls.length).fill([401, 'client_certificate_claim']));

      const session = await ClaimSession.open(fleet, claim, 'renewer');
      assert.deepEqual(await subackCodes(session.client, { [RENEW_ACCEPTED]: { qos: 0 }, [RENEW_REJECTED]: { qos: 0 } }), [0x80, 0x80]);
      const gone = closed(session.client);
      session.client.publish(RENEW_TOPIC, JSON.stringify({ csr }));
      await gone;
      assert.equal((await refusal({ clientId: 'claim/line-7/renewer', topic: RENEW_TOPIC })).reason, 'topic_denied');
    });

    it('delivers a reply only to the session that asked, though every session of the batch subscribes to it', async () => {
      const [asking, listening] = await Promise.all([ClaimSession.open(fleet, claim, 'asker'), ClaimSession.open(fleet, claim, 'listener')]);
      const answer = await asking.createFromCsr((await ecKeyWithCsr()).csrPem, { SerialNumber: serialNumber() });
      assert.equal(answer.accepted, true);
      const failure = await asking.createFromCsr((await ecKeyWithCsr()).csrPem, { SerialNumber: serialNumber() });
      assert.equal(failure.accepted, false);
      // A round trip of its own proves the listener's earlier deliveries have arrived.
      await listening.request(CREATE, 'not json');
      assert.deepEqual(listening.received.map(errorCode), ['claim_request_invalid']);
      await Promise.all([asking.end(), listening.end()]);
    });

    it('refuses a claim certificate with a client id outside claim/<batch>/, a persistent session or a will', async () => {
      const attempts = [
        { id: 'sensor-C0FFEE01', extra: {} }, // an existing device's id: no takeover, no inheritance
        { id: 'claim/line-8/x', extra: {} }, // another batch's namespace
        { id: 'claim/line-7/persistent', extra: { clean: false } },
        { id: 'claim/line-7/will', extra: { will: { topic: CREATE, payload: Buffer.from('x'), qos: 0 as const, retain: false } } },
      ];
      for (const { id, extra } of attempts) {
        const outcome = await fleet.tryConnect({ ...claimIdentity(claim, 'x'), id }, extra);
        assert.equal(outcome.returnCode, 5, id);
        await end(outcome.client);
        assert.equal((await refusal({ clientId: id, reason: 'claim_session_invalid' })).stage, 'connect', id);
      }
    });
  });

  describe('replay and abuse', () => {
    it('takes one CSR per claim session, and never certifies a key twice', async () => {
      const session = await ClaimSession.open(fleet, claim, 'replay-1');
      const key = await ecKeyWithCsr();
      const first = await session.createFromCsr(key.csrPem, { SerialNumber: serialNumber() });
      assert.equal(first.accepted, true);
      const second = await session.createFromCsr((await ecKeyWithCsr()).csrPem, { SerialNumber: serialNumber() });
      assert.deepEqual([second.accepted, second.topic, second.body.error.code], [false, `${CREATE}/rejected`, 'claim_csr_repeated']);
      assert.equal((await session.register(first.body.deviceId, first.body.serial)).accepted, true);
      const again = await session.register(first.body.deviceId, first.body.serial);
      assert.deepEqual([again.accepted, again.body.error.code], [false, 'claim_already_registered']);
      await session.end();

      const next = await ClaimSession.open(fleet, claim, 'replay-2');
      const replayed = await next.createFromCsr(key.csrPem, { SerialNumber: serialNumber() });
      assert.deepEqual([replayed.accepted, replayed.body.error.code], [false, 'public_key_in_use']);
      await next.end();
      assert.equal((await refusal({ clientId: 'claim/line-7/replay-2', code: 'public_key_in_use' })).reason, 'claim_replayed');
    });

    it('never takes over a device that exists, nor binds what it did not issue', async () => {
      assert.equal((await fleet.api('/v1/devices', { body: { id: 'sensor-0000BEEF' } })).status, 201);
      const session = await ClaimSession.open(fleet, claim, 'taker');
      const taken = await session.createFromCsr((await ecKeyWithCsr()).csrPem, { SerialNumber: '0000BEEF' });
      assert.deepEqual([taken.accepted, taken.body.error.code], [false, 'claim_device_exists']);
      assert.equal((await refusal({ clientId: 'claim/line-7/taker' })).reason, 'claim_identity_refused');
      const unknown = await session.register('sensor-0000BEEF', 'ab'.repeat(16));
      assert.deepEqual([unknown.accepted, unknown.body.error.code], [false, 'claim_binding_unknown']);
      await session.end();
    });

    it('answers malformed requests, bad CSRs and parameters that do not fit with their codes', async () => {
      const session = await ClaimSession.open(fleet, claim, 'sloppy');
      const rejections: [string, unknown, string][] = [
        [CREATE, 'not json', 'claim_request_invalid'],
        [CREATE, { csr: 42 }, 'claim_request_invalid'],
        [REGISTER, { deviceId: 'x', serial: 'y', extra: true }, 'claim_request_invalid'],
        [REGISTER, { deviceId: 'x/y', serial: 'zz' }, 'claim_binding_unknown'],
      ];
      for (const [topic, payload, code] of rejections) {
        const reply = await session.request(topic, payload);
        assert.deepEqual([reply.accepted, reply.body.error.code], [false, code], JSON.stringify(payload));
      }
      await session.end();
      for (const [parameters, csr, code] of [
        [{ SerialNumber: 'lowercase!' }, undefined, 'claim_parameters_invalid'],
        [{ SerialNumber: 'C0FFEE99', Unknown: 'x' }, undefined, 'claim_parameters_invalid'],
        [{}, undefined, 'claim_parameters_invalid'],
        [{ SerialNumber: 'C0FFEE99' }, 'garbage', 'csr_malformed'],
      ] as const) {
        const fresh = await ClaimSession.open(fleet, claim, `sloppy-${code}-${Object.keys(parameters).length}`);
        const reply = await fresh.createFromCsr(csr ?? (await ecKeyWithCsr()).csrPem, parameters);
        assert.deepEqual([reply.accepted, reply.body.error.code], [false, code], JSON.stringify(parameters));
        await fresh.end();
      }
    });

    it('limits a batch’s request rate, across all its sessions, and counts what it refused', async () => {
      const limited = await createBatch(fleet, 'line-slow', { rateLimit: { perSecond: 0.01, burst: 2 } });
      const sessions = await Promise.all(['a', 'b', 'c'].map((n) => ClaimSession.open(fleet, limited, n)));
      const replies = [];
      for (const session of sessions) replies.push(await session.request(CREATE, 'not json'));
      assert.deepEqual(replies.map(errorCode), ['claim_request_invalid', 'claim_request_invalid', 'claim_rate_limited']);
      await Promise.all(sessions.map((s) => s.end()));
      await eventually(async () => (await fleet.refusals('claim_rate_limited')) >= 1, 3000, 'claim_rate_limited counted');
      const metrics = (await fleet.api('/metrics', { anonymous: true })).body.toString();
      assert.match(metrics, /fleet_claim_requests_total\{request="create-from-csr",outcome="claim_rate_limited"\} 1/);
    });

    it('admits nothing once the batch’s claim certificate expires, and issues nothing to a session admitted before', async () => {
      const brief = await createBatch(fleet, 'line-brief', { validitySeconds: 60 });
      const session = await ClaimSession.open(fleet, brief, 'late');
      offset = 2 * 60_000;
      try {
        const refused = await fleet.tryConnect(claimIdentity(brief, 'later'));
        assert.equal(refused.returnCode, 5);
        await end(refused.client);
        assert.equal((await refusal({ clientId: 'claim/line-brief/later' })).reason, 'certificate_expired');
        const late = await session.createFromCsr((await ecKeyWithCsr()).csrPem, { SerialNumber: serialNumber() });
        assert.deepEqual([late.accepted, errorCode(late)], [false, 'claim_batch_expired']);
      } finally {
        offset = 0;
        await session.end();
      }
    });

    it('revokes a batch: its sessions closed, nothing admitted any more, its certificate on the CRL', async () => {
      const doomed = await createBatch(fleet, 'line-doomed');
      const session = await ClaimSession.open(fleet, doomed, 'live');
      const gone = closed(session.client);
      const revoked = await fleet.api('/v1/claim-batches/line-doomed/revoke', { body: { reason: 'keyCompromise' } });
      assert.deepEqual([revoked.status, revoked.json.status], [200, 'REVOKED']);
      await gone;
      assert.equal((await fleet.logs.waitFor('session_terminated', { deviceId: 'claim/line-doomed/live' })).reason, 'claim_batch_revoked');
      const retry = await fleet.tryConnect(claimIdentity(doomed, 'live'));
      assert.equal(retry.returnCode, 5);
      await end(retry.client);
      assert.equal((await refusal({ clientId: 'claim/line-doomed/live' })).reason, 'claim_batch_revoked');
      const serial = (await fleet.api('/v1/claim-batches/line-doomed')).json.serial as string;
      assert.ok((await fleet.api('/v1/crl', { anonymous: true })).body.includes(Buffer.from(serial, 'hex')), 'the claim certificate is on its CA’s CRL');
    });
    it('revokes with a batch the certificates it minted that were never registered, and closes the sessions that minted them', async () => {
      const doomed = await createBatch(fleet, 'line-doomed-2');
      const bound = await ClaimSession.open(fleet, doomed, 'bound');
      const kept = await bound.createFromCsr((await ecKeyWithCsr()).csrPem, { SerialNumber: serialNumber() });
      assert.equal((await bound.register(kept.body.deviceId, kept.body.serial)).accepted, true);
      await bound.end();
      const pending = await ClaimSession.open(fleet, doomed, 'pending');
      const loose = await pending.createFromCsr((await ecKeyWithCsr()).csrPem, { SerialNumber: serialNumber() });
      assert.equal(loose.accepted, true);
      const gone = closed(pending.client);

      assert.equal((await fleet.api('/v1/claim-batches/line-doomed-2/revoke', { body: { reason: 'keyCompromise' } })).status, 200);
      await gone;
      assert.equal((await fleet.logs.waitFor('session_terminated', { deviceId: 'claim/line-doomed-2/pending' })).reason, 'claim_batch_revoked');
      const statusOf = async (deviceId: string, serial: string) => ((await fleet.api(`/v1/devices/${deviceId}`)).json.certificates as { serial: string; status: string }[]).find((c) => c.serial === serial)?.status;
      assert.deepEqual([await statusOf(loose.body.deviceId, loose.body.serial), await statusOf(kept.body.deviceId, kept.body.serial)], ['REVOKED', 'ACTIVE']);
      const crl = (await fleet.api('/v1/crl', { anonymous: true })).body;
      assert.deepEqual([crl.includes(Buffer.from(loose.body.serial, 'hex')), crl.includes(Buffer.from(kept.body.serial, 'hex'))], [true, false]);
      // Revoking again changes nothing more.
      assert.equal((await fleet.api('/v1/claim-batches/line-doomed-2/revoke', { body: {} })).status, 200);
      assert.equal(await statusOf(kept.body.deviceId, kept.body.serial), 'ACTIVE');
    });
  });

  describe('the pre-provisioning hook', () => {
    let hook: Server;
    let hooked: ClaimBatchIdentity;
    const asked: { batch: string; deviceId: string; parameters: Record<string, string>; publicKeySha256: string; clientId: string }[] = [];
    // What the hook does for each serial number: allow, deny, override, fail, stall.
    const behaviour: Record<string, (res: ServerResponse) => void> = {
      A11A0001: (res) => res.end(JSON.stringify({ allow: true })),
      DE1D0001: (res) => res.end(JSON.stringify({ allow: false, reason: 'not on the production list' })),
      A11A0002: (res) => res.end(JSON.stringify({ allow: true, parameters: { SerialNumber: 'BEEF0002', Model: 'M9' } })),
      E5500001: (res) => {
        res.statusCode = 500;
        res.end('{}');
      },
      E5500002: (res) => res.end('{"allow": "yes"}'),
      '57A10001': () => undefined, // never answers
    };
    before(async () => {
      hook = createServer((req: IncomingMessage, res: ServerResponse) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const question = JSON.parse(Buffer.concat(chunks).toString()) as (typeof asked)[number];
          asked.push(question);
          behaviour[question.parameters.SerialNumber!]!(res);
        });
      });
      hook.listen(0, '127.0.0.1');
      await once(hook, 'listening');
      hooked = await createBatch(fleet, 'line-hooked', { hook: { url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/decide`, timeoutMs: 300 } });
    });
    after(async () => {
      hook.closeAllConnections();
      await new Promise((resolve) => hook.close(resolve));
    });

    async function claimAs(serialNo: string) {
      const session = await ClaimSession.open(fleet, hooked, `hook-${serialNo}`);
      const reply = await session.createFromCsr((await ecKeyWithCsr()).csrPem, { SerialNumber: serialNo, Model: 'M1' });
      await session.end();
      return reply;
    }

    it('asks it before signing anything, and provisions the device it allows', async () => {
      const allowed = await claimAs('A11A0001');
      assert.deepEqual([allowed.accepted, allowed.body.deviceId], [true, 'sensor-A11A0001']);
      const question = asked.find((q) => q.parameters.SerialNumber === 'A11A0001')!;
      assert.deepEqual([question.batch, question.deviceId, question.clientId], ['line-hooked', 'sensor-A11A0001', 'claim/line-hooked/hook-A11A0001']);
      assert.match(question.publicKeySha256, /^[0-9a-f]{64}$/);
    });

    it('provisions what it overrides: the device id and attributes follow the overridden parameters', async () => {
      const overridden = await claimAs('A11A0002');
      assert.deepEqual([overridden.accepted, overridden.body.deviceId], [true, 'sensor-BEEF0002']);
      assert.deepEqual((await fleet.api('/v1/devices/sensor-BEEF0002')).json.attributes, { model: 'M9', line: 'L7' });
    });

    it('refuses what it denies, and when it fails, answers nonsense or stays silent — signing nothing', async () => {
      for (const [serialNo, code] of [
        ['DE1D0001', 'claim_hook_denied'],
        ['E5500001', 'claim_hook_failed'],
        ['E5500002', 'claim_hook_failed'],
        ['57A10001', 'claim_hook_timeout'],
      ]) {
        const refused = await claimAs(serialNo!);
        assert.deepEqual([refused.accepted, refused.body.error.code], [false, code], serialNo);
        assert.equal((await fleet.api(`/v1/devices/sensor-${serialNo}`)).status, 404, 'no device, no certificate');
        assert.equal((await refusal({ clientId: `claim/line-hooked/hook-${serialNo}` })).reason, 'claim_hook_refused');
      }
    });
  });
});
