// The claim client's steps on a stepped clock, against a claim transport whose answers the
// test scripts: the order of requests and what each carries, what survives a failed
// session (a certificate held is registered, never asked for again), which refusals are
// retried after backoff and which end the claim, and the pace requests keep.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClaimClient, ClaimFailed, ClaimFigures, claimRetried, type ClaimLink, type ClaimStep, type ClaimTransport } from '../../firmware-sim/device/claim.js';
import { ClaimEnroller } from '../../firmware-sim/device/issuance.js';
import { ExchangeError, type JsonObject } from '../../firmware-sim/device/mqtt-exchange.js';
import { ConnectRefused } from '../../firmware-sim/device/mqtt-connect.js';
import { Pacer } from '../../firmware-sim/pacer.js';
import { ManualTimers } from '../support/manual-timers.js';

/** What a scripted session answers a request with: accepted (a body, or the default one) or rejected with a code. */
type Answer = { accepted: JsonObject } | { rejected: string };

const certificateReply = (deviceId: string, n: number): JsonObject => ({
  deviceId,
  serial: `0a:${n}`,
  fingerprint: `f${n}`,
  status: 'PENDING_ACTIVATION',
  certificate: `-----BEGIN CERTIFICATE-----\ncert-${n}\n-----END CERTIFICATE-----\n`,
  chain: '',
  notBefore: '2030-01-01T00:00:00.000Z',
  notAfter: '2030-01-31T00:00:00.000Z',
});

class ScriptedTransport implements ClaimTransport {
  /** One entry per open: undefined admits, a code refuses the CONNECT. */
  readonly connects: (string | undefined)[] = [];
  readonly answers: Record<ClaimStep, Answer[]> = { create: [], register: [] };
  readonly opened: string[] = [];
  readonly requests: { session: number; step: ClaimStep; body: JsonObject }[] = [];
  closed = 0;
  #issued = 0;

  constructor(private readonly deviceId: string) {}

  async open(nonce: string): Promise<ClaimLink> {
    await Promise.resolve();
    const refusal = this.connects.shift();
    if (refusal) throw new ConnectRefused(refusal);
    this.opened.push(nonce);
    const session = this.opened.length;
    return {
      request: async (step, body) => {
        await Promise.resolve();
        this.requests.push({ session, step, body });
        const answer = this.answers[step].shift() ?? { accepted: step === 'create' ? certificateReply(this.deviceId, ++this.#issued) : { deviceId: this.deviceId, status: 'ACTIVE' } };
        if ('rejected' in answer) throw new ExchangeError(answer.rejected);
        return answer.accepted;
      },
      close: () => {
        this.closed++;
        return Promise.resolve();
      },
    };
  }
}

function setup(deviceId = 'sensor-000001', pace = { perSecond: 1000, burst: 1000 }) {
  const timers = new ManualTimers();
  const transport = new ScriptedTransport(deviceId);
  const figures = new ClaimFigures();
  let keys = 0;
  const client = new ClaimClient({
    transport,
    pacer: new Pacer(pace, timers),
    timers,
    random: () => 0.5,
    backoff: { baseMs: 1000, capMs: 8000 },
    maxSessions: 4,
    observer: figures,
    makeKey: (nonce) => {
      keys++;
      return Promise.resolve({ keyPem: `key-${keys}-${nonce}`, csrPem: `csr-${keys}-${nonce}` });
    },
  });
  return { timers, transport, figures, client, keysMade: () => keys };
}

/** Runs the clock forward, timer by timer, until the claim settles. */
async function drive<T>(timers: ManualTimers, work: Promise<T>): Promise<T> {
  let settled = false;
  const outcome = work.then(
    (value) => ((settled = true), { value }),
    (error: unknown) => ((settled = true), { error }),
  );
  for (let i = 0; i < 100 && !settled; i++) {
    await timers.settle();
    if (settled) break;
    const next = timers.next;
    if (next !== undefined) timers.advance(Math.max(0, next - timers.now()));
  }
  const result = await outcome;
  if ('error' in result) throw result.error;
  return result.value;
}

const steps = (t: ScriptedTransport) => t.requests.map((r) => `${r.session}:${r.step}`);

describe('ClaimClient', () => {
  it('creates from a CSR of a fresh key, registers what it got, and closes the one session', async () => {
    const { timers, transport, figures, client } = setup();
    const claimed = await drive(timers, client.claim('000001', { SerialNumber: '000001' }));
    assert.deepEqual(steps(transport), ['1:create', '1:register']);
    assert.deepEqual(transport.opened, ['000001']);
    assert.deepEqual(transport.requests[0]!.body, { csr: 'csr-1-000001', parameters: { SerialNumber: '000001' } });
    assert.deepEqual(transport.requests[1]!.body, { deviceId: 'sensor-000001', serial: '0a:1' });
    assert.equal(transport.closed, 1);
    assert.deepEqual(
      { deviceId: claimed.deviceId, serial: claimed.serial, keyPem: claimed.keyPem, notAfter: claimed.notAfter },
      { deviceId: 'sensor-000001', serial: '0a:1', keyPem: 'key-1-000001', notAfter: '2030-01-31T00:00:00.000Z' },
    );
    assert.match(claimed.certificatePem, /cert-1/);
    assert.deepEqual([figures.sessions, figures.requests, Object.fromEntries(figures.refusals)], [1, { create: 1, register: 1 }, {}]);
    assert.equal(figures.latency.create.count, 1);
  });

  it('tries a rate-limited CSR again on a new session after backoff, with a new key', async () => {
    const { timers, transport, figures, client, keysMade } = setup();
    transport.answers.create.push({ rejected: 'claim_rate_limited' });
    const started = timers.now();
    await drive(timers, client.claim('000001', { SerialNumber: '000001' }));
    assert.deepEqual(steps(transport), ['1:create', '2:create', '2:register']);
    assert.equal(timers.now() - started, 500, 'the first retry waits within its 1 s window (random 0.5)');
    assert.equal(keysMade(), 2);
    assert.notEqual(transport.requests[1]!.body.csr, transport.requests[0]!.body.csr);
    assert.equal(transport.closed, 2, 'the refused session was closed too');
    assert.deepEqual([figures.sessions, Object.fromEntries(figures.refusals)], [2, { claim_rate_limited: 1 }]);
  });

  it('resumes at register once it holds a certificate: the CSR is never sent again', async () => {
    const { timers, transport, figures, client, keysMade } = setup();
    transport.answers.register.push({ rejected: 'claim_unavailable' }, { rejected: 'claim_rate_limited' });
    const claimed = await drive(timers, client.claim('000001', { SerialNumber: '000001' }));
    assert.deepEqual(steps(transport), ['1:create', '1:register', '2:register', '3:register']);
    assert.equal(keysMade(), 1);
    for (const r of transport.requests.filter((q) => q.step === 'register')) assert.deepEqual(r.body, { deviceId: 'sensor-000001', serial: '0a:1' });
    assert.equal(claimed.serial, '0a:1');
    assert.deepEqual(Object.fromEntries(figures.refusals), { claim_unavailable: 1, claim_rate_limited: 1 });
  });

  it('takes claim_already_registered after a register whose answer was lost as done', async () => {
    const { timers, transport, client } = setup();
    transport.answers.register.push({ rejected: 'reply_timeout' }, { rejected: 'claim_already_registered' });
    const claimed = await drive(timers, client.claim('000001', { SerialNumber: '000001' }));
    assert.equal(claimed.serial, '0a:1');
    assert.deepEqual(steps(transport), ['1:create', '1:register', '2:register']);
  });

  it('ends the claim on a refusal about the claim itself, without another session', async () => {
    for (const [step, code] of [['create', 'claim_device_exists'], ['create', 'claim_parameters_invalid'], ['create', 'claim_hook_denied'], ['register', 'claim_already_registered'], ['register', 'claim_binding_unknown']] as const) {
      const { timers, transport, figures, client } = setup();
      transport.answers[step].push({ rejected: code });
      await assert.rejects(drive(timers, client.claim('000001', { SerialNumber: '000001' })), (error: unknown) => error instanceof ClaimFailed && error.code === code && error.at === step, `${step}: ${code}`);
      assert.equal(transport.opened.length, 1, code);
      assert.equal(transport.closed, 1, `${code}: the session is closed`);
      assert.deepEqual(Object.fromEntries(figures.refusals), { [code]: 1 });
    }
  });

  it('counts CONNECT refusals like a device’s: tries again after server_unavailable or a socket error, gives up on not_authorized', async () => {
    const retried = setup();
    retried.transport.connects.push('server_unavailable', 'ECONNRESET');
    await drive(retried.timers, retried.client.claim('000001', { SerialNumber: '000001' }));
    assert.deepEqual(Object.fromEntries(retried.figures.refusals), { server_unavailable: 1, ECONNRESET: 1 });
    assert.equal(retried.figures.sessions, 1, 'sessions count the ones opened');

    const refused = setup();
    refused.transport.connects.push('not_authorized');
    await assert.rejects(drive(refused.timers, refused.client.claim('000001', { SerialNumber: '000001' })), (error: unknown) => error instanceof ClaimFailed && error.code === 'not_authorized' && error.at === 'connect');
    assert.deepEqual(refused.transport.requests, []);
  });

  it('gives up after its sessions, with the last refusal’s code, the waits growing', async () => {
    const { timers, transport, client } = setup();
    transport.connects.push('connect_timeout', 'connect_timeout', 'connect_timeout', 'server_unavailable');
    const started = timers.now();
    await assert.rejects(drive(timers, client.claim('000001', { SerialNumber: '000001' })), (error: unknown) => error instanceof ClaimFailed && error.code === 'server_unavailable');
    // Three backoffs at half their window: 1 s, 2 s, 4 s.
    assert.equal(timers.now() - started, 500 + 1000 + 2000);
    assert.deepEqual(transport.connects, []);
  });

  it('refuses an accepted reply without the certificate it should carry', async () => {
    const { timers, transport, figures, client } = setup();
    transport.answers.create.push({ accepted: { deviceId: 'sensor-000001', serial: '0a:9' } });
    await assert.rejects(drive(timers, client.claim('000001', { SerialNumber: '000001' })), (error: unknown) => error instanceof ClaimFailed && error.code === 'reply_unreadable');
    assert.deepEqual(Object.fromEntries(figures.refusals), { reply_unreadable: 1 });
  });

  it('sends each request at its turn of the pace', async () => {
    const { timers, transport, figures, client } = setup('sensor-000001', { perSecond: 10, burst: 1 });
    const claim = client.claim('000001', { SerialNumber: '000001' });
    await timers.settle();
    await timers.settle();
    assert.deepEqual(steps(transport), ['1:create'], 'register waits for the next token');
    timers.advance(99);
    await timers.settle();
    assert.deepEqual(steps(transport), ['1:create']);
    timers.advance(1);
    await drive(timers, claim);
    assert.deepEqual(steps(transport), ['1:create', '1:register']);
    assert.deepEqual([figures.pacedRequests, figures.pacedMs], [1, 100]);
  });

  it('retries the network and busy answers only', () => {
    for (const code of ['server_unavailable', 'connect_timeout', 'socket_closed', 'ECONNREFUSED', 'EPIPE', 'claim_rate_limited', 'claim_unavailable', 'reply_timeout', 'connection_lost']) assert.ok(claimRetried(code), code);
    for (const code of ['not_authorized', 'identifier_rejected', 'claim_csr_repeated', 'claim_device_exists', 'public_key_in_use', 'csr_malformed', 'claim_hook_timeout', 'subscription_refused', 'reply_unreadable', 'error']) assert.ok(!claimRetried(code), code);
  });
});

describe('ClaimEnroller', () => {
  it('claims under the serial number the device id ends in, and refuses an identity it did not ask for', async () => {
    const { timers, transport, client } = setup('sensor-000007');
    const enroller = new ClaimEnroller(client, (deviceId) => ({ nonce: deviceId.slice(7), parameters: { SerialNumber: deviceId.slice(7) } }));
    const issued = await drive(timers, enroller.enroll('sensor-000007'));
    assert.equal(issued.serial, '0a:1');
    assert.deepEqual(transport.opened, ['000007']);

    const other = setup('sensor-000099');
    const mismatched = new ClaimEnroller(other.client, () => ({ nonce: '000008', parameters: { SerialNumber: '000008' } }));
    await assert.rejects(drive(other.timers, mismatched.enroll('sensor-000008')), (error: unknown) => error instanceof ClaimFailed && error.code === 'claim_device_unexpected');
  });
});
