// Abuse control, break-glass matching and admission with a waiver, on plain data with a
// stepped clock.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AbuseControl } from '../../broker/abuse.js';
import { decideAdmission } from '../../broker/admission.js';
import { GrantBook } from '../../broker/break-glass.js';
import { EnforcementState } from '../../broker/enforcement.js';
import type { PeerCertificateFacts } from '../../broker/peer.js';
import type { DeviceId, Fingerprint, SerialHex } from '../../registry/ids.js';
import type { Grant } from '../../registry/model.js';

const limits = { perClientId: { ratePerSecond: 1, burst: 2 }, perAddress: { ratePerSecond: 100, burst: 100 }, ban: { afterThrottled: 3, windowMs: 60_000, durationMs: 300_000 } };

describe('AbuseControl', () => {
  it('throttles a client id past its burst, refills with time, and bans a persistent one until the ban lifts', () => {
    let now = 0;
    const abuse = new AbuseControl(limits, () => now);
    const connect = () => abuse.checkConnect('dev-1', '10.0.0.1', 'fp-1');
    assert.deepEqual([connect().ok, connect().ok], [true, true]);
    assert.deepEqual(connect(), { ok: false, reason: 'throttled', detail: 'client id over 1/s' });
    now = 1000;
    assert.equal(connect().ok, true, 'a token back after a second');
    assert.equal(connect().ok, false);
    assert.equal(connect().ok, false);
    assert.equal((connect() as { reason: string }).reason, 'banned', 'the third strike bans');
    now = 200_000;
    assert.equal((connect() as { reason: string }).reason, 'banned');
    assert.equal(abuse.bans().length, 1);
    now = 301_001;
    assert.equal(connect().ok, true, 'the ban lifts by itself');
  });

  it('keeps allowances per certificate: another client cannot use up a device’s', () => {
    const now = 0;
    const abuse = new AbuseControl(limits, () => now);
    for (let i = 0; i < 10; i++) abuse.checkConnect('victim', '10.6.6.6'); // no certificate: the attacker
    assert.equal(abuse.checkConnect('victim', '10.0.0.9', 'fp-victim').ok, true);
    assert.equal(abuse.bans()[0]?.identity, 'address 10.6.6.6');
    assert.equal(abuse.unban('victim'), 1);
    assert.equal(abuse.bans().length, 0);
  });

  it('throttles an address over its own limit', () => {
    const abuse = new AbuseControl({ ...limits, perAddress: { ratePerSecond: 1, burst: 1 } }, () => 0);
    assert.equal(abuse.checkConnect('a', '10.0.0.1', 'fa').ok, true);
    assert.match((abuse.checkConnect('b', '10.0.0.1', 'fb') as { detail: string }).detail, /address 10\.0\.0\.1/);
  });
});

const certificate: PeerCertificateFacts = {
  serial: '0a',
  fingerprint: 'aa'.repeat(32) as Fingerprint,
  commonName: 'dev-1',
  subject: 'CN=dev-1',
  issuer: 'CN=Issuing',
  notBefore: new Date('2026-01-01'),
  notAfter: new Date('2026-02-01'),
};
const grant = (extra: Partial<Grant>): Grant => ({
  id: 'g1',
  deviceId: 'dev-1' as DeviceId,
  waives: 'certificate_expired',
  reason: 'r',
  durationMs: 60_000,
  requestedBy: 'operator:a',
  approvedBy: 'operator:b',
  createdAt: new Date('2026-03-01T00:00:00Z'),
  approvedAt: new Date('2026-03-01T00:00:00Z'),
  expiresAt: new Date('2026-03-01T00:01:00Z'),
  ...extra,
});

describe('GrantBook', () => {
  const during = new Date('2026-03-01T00:00:30Z');
  it('finds an approved, unexpired grant for the waived reason only', () => {
    const book = new GrantBook();
    book.put(grant({}));
    assert.equal(book.find(certificate, 'certificate_expired', during)?.id, 'g1');
    assert.equal(book.find(certificate, 'certificate_not_yet_valid', during), undefined);
    assert.equal(book.find(certificate, 'certificate_expired', new Date('2026-03-01T00:01:00Z')), undefined, 'expired');
    assert.equal(book.find({ ...certificate, commonName: 'dev-2' }, 'certificate_expired', during), undefined);
    book.forgetDevice('dev-1');
    assert.equal(book.find(certificate, 'certificate_expired', during), undefined);
  });

  it('never matches a revocation, and matches identity-less failures only when pinned', () => {
    const book = new GrantBook();
    book.put(grant({ id: 'revoked', waives: 'certificate_revoked' }));
    book.put(grant({ id: 'loose', waives: 'unregistered_certificate' }));
    book.put(grant({ id: 'pinned', waives: 'unknown_issuer', fingerprint: certificate.fingerprint }));
    assert.equal(book.find(certificate, 'certificate_revoked', during), undefined);
    assert.equal(book.find(certificate, 'unregistered_certificate', during), undefined);
    assert.equal(book.find(certificate, 'unknown_issuer', during)?.id, 'pinned');
    assert.equal(book.find({ ...certificate, fingerprint: 'bb'.repeat(32) as Fingerprint }, 'unknown_issuer', during), undefined);
  });
});

describe('admission with a waiver', () => {
  const record = { serial: '0a' as SerialHex, fingerprint: certificate.fingerprint, deviceId: 'dev-1' as DeviceId, certificateStatus: 'ACTIVE' as const, deviceStatus: 'ACTIVE' as const, notBefore: certificate.notBefore, notAfter: certificate.notAfter };
  const after = () => new Date('2026-03-01');
  const deps = (status: 'ACTIVE' | 'REVOKED' = 'ACTIVE') => ({ now: after, standing: () => Promise.resolve({ kind: 'registered' as const, record: { ...record, certificateStatus: status } }) });
  const peer = { address: 'x', chainError: 'CERT_HAS_EXPIRED', certificate };

  it('passes the waived failure and still runs every other check', async () => {
    assert.deepEqual(await decideAdmission({ peer, clientId: 'dev-1' }, deps(), { waive: 'certificate_expired' }), { ok: true, deviceId: 'dev-1', record, waived: 'certificate_expired' });
    assert.equal(((await decideAdmission({ peer, clientId: 'dev-1' }, deps('REVOKED'), { waive: 'certificate_expired' })) as { reason: string }).reason, 'certificate_revoked');
    assert.equal(((await decideAdmission({ peer, clientId: 'other' }, deps(), { waive: 'certificate_expired' })) as { reason: string }).reason, 'client_id_mismatch');
  });

  it('calls a chain failure under a CA the registry knows a missing link', async () => {
    const known = await decideAdmission({ peer: { ...peer, chainError: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' }, clientId: 'dev-1' }, { ...deps(), knownIssuer: () => true });
    assert.equal((known as { reason: string }).reason, 'chain_incomplete');
    const stranger = await decideAdmission({ peer: { ...peer, chainError: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' }, clientId: 'dev-1' }, { ...deps(), knownIssuer: () => false });
    assert.equal((stranger as { reason: string }).reason, 'unknown_issuer');
  });
});

describe('EnforcementState', () => {
  it('monitors identity and topic failures in monitor mode, never decisions or abuse', () => {
    const state = new EnforcementState();
    assert.equal(state.monitors('certificate_expired', []), false);
    state.setGroup('pilot', 'monitor');
    assert.equal(state.monitors('certificate_expired', ['pilot']), true);
    assert.equal(state.monitors('certificate_expired', ['other']), false);
    state.set('monitor', []);
    for (const reason of ['unregistered_certificate', 'topic_denied', 'no_client_certificate'] as const) assert.equal(state.monitors(reason, []), true, reason);
    for (const reason of ['certificate_revoked', 'certificate_inactive', 'device_disabled', 'throttled', 'banned', 'keepalive_out_of_bounds'] as const) assert.equal(state.monitors(reason, []), false, reason);
  });
});
