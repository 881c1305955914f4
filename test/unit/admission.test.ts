// The CONNECT decision on plain data, with an injected clock for the validity edges.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideAdmission, type AdmissionDeps, type Standing } from '../../broker/admission.js';
import type { PeerCertificateFacts, PeerFacts } from '../../broker/peer.js';
import type { DeviceId, Fingerprint, SerialHex } from '../../registry/ids.js';
import type { AdmissionRecord } from '../../registry/model.js';

const notBefore = new Date('2026-01-01T00:00:00.000Z');
const notAfter = new Date('2026-02-01T00:00:00.000Z');

const certificate: PeerCertificateFacts = {
  serial: '1a2b',
  fingerprint: 'ab'.repeat(32) as Fingerprint,
  commonName: 'dev-1',
  subject: 'CN=dev-1',
  issuer: 'CN=Issuing',
  notBefore,
  notAfter,
};
const peer: PeerFacts = { address: '127.0.0.1:5000', certificate };
const record: AdmissionRecord = {
  serial: '1a2b' as SerialHex,
  fingerprint: certificate.fingerprint,
  deviceId: 'dev-1' as DeviceId,
  certificateStatus: 'ACTIVE',
  deviceStatus: 'ACTIVE',
  notBefore,
  notAfter,
};

function deps(at: Date, standing: Standing | Error = { kind: 'registered', record }): AdmissionDeps {
  return {
    now: () => at,
    standing: () => (standing instanceof Error ? Promise.reject(standing) : Promise.resolve(standing)),
  };
}

const midway = new Date('2026-01-15T00:00:00.000Z');

describe('decideAdmission', () => {
  it('admits a registered, active certificate whose CN is the client id', async () => {
    assert.deepEqual(await decideAdmission({ peer, clientId: 'dev-1' }, deps(midway)), { ok: true, deviceId: 'dev-1', record });
  });

  describe('validity edges (RFC 5280: notBefore and notAfter are inclusive)', () => {
    const cases: [string, Date, string | undefined][] = [
      ['one millisecond before notBefore', new Date(notBefore.getTime() - 1), 'certificate_not_yet_valid'],
      ['exactly notBefore', notBefore, undefined],
      ['exactly notAfter', notAfter, undefined],
      ['one millisecond after notAfter', new Date(notAfter.getTime() + 1), 'certificate_expired'],
    ];
    for (const [name, at, reason] of cases) {
      it(`${name}: ${reason ?? 'admitted'}`, async () => {
        const verdict = await decideAdmission({ peer, clientId: 'dev-1' }, deps(at));
        assert.equal(verdict.ok ? undefined : verdict.reason, reason);
      });
    }
  });

  it('names a missing certificate as such, not by the chain error Node reports with it', async () => {
    const verdict = await decideAdmission({ peer: { address: 'x', chainError: 'UNABLE_TO_GET_ISSUER_CERT' }, clientId: 'dev-1' }, deps(midway));
    assert.deepEqual(verdict, { ok: false, reason: 'no_client_certificate', detail: undefined });
  });

  const chainErrors: [string, string][] = [
    ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'unknown_issuer'],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'unknown_issuer'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'unknown_issuer'],
    ['CERT_HAS_EXPIRED', 'certificate_expired'],
    ['CERT_NOT_YET_VALID', 'certificate_not_yet_valid'],
    ['INVALID_PURPOSE', 'wrong_key_usage'],
    ['CERT_SIGNATURE_FAILURE', 'certificate_invalid'],
  ];
  for (const [chainError, reason] of chainErrors) {
    it(`maps the TLS verdict ${chainError} to ${reason}`, async () => {
      const verdict = await decideAdmission({ peer: { ...peer, chainError }, clientId: 'dev-1' }, deps(midway));
      assert.equal(verdict.ok ? 'ok' : verdict.reason, reason);
    });
  }

  it('refuses a client id that is not the certificate CN', async () => {
    const verdict = await decideAdmission({ peer, clientId: 'dev-2' }, deps(midway));
    assert.equal(verdict.ok ? 'ok' : verdict.reason, 'client_id_mismatch');
  });

  const registryCases: [string, Standing, string][] = [
    ['not in the registry', { kind: 'unregistered' }, 'unregistered_certificate'],
    ['revoked', { kind: 'registered', record: { ...record, certificateStatus: 'REVOKED' } }, 'certificate_revoked'],
    ['inactive', { kind: 'registered', record: { ...record, certificateStatus: 'INACTIVE' } }, 'certificate_inactive'],
    ['pending activation', { kind: 'registered', record: { ...record, certificateStatus: 'PENDING_ACTIVATION' } }, 'certificate_inactive'],
    ['of a disabled device', { kind: 'registered', record: { ...record, deviceStatus: 'DISABLED' } }, 'device_disabled'],
    ['recorded for another device', { kind: 'registered', record: { ...record, deviceId: 'dev-9' as DeviceId } }, 'client_id_mismatch'],
  ];
  for (const [name, standing, reason] of registryCases) {
    it(`refuses a certificate ${name}: ${reason}`, async () => {
      const verdict = await decideAdmission({ peer, clientId: 'dev-1' }, deps(midway, standing));
      assert.equal(verdict.ok ? 'ok' : verdict.reason, reason);
    });
  }

  it('fails closed when the registry cannot answer', async () => {
    const verdict = await decideAdmission({ peer, clientId: 'dev-1' }, deps(midway, new Error('database is locked')));
    assert.equal(verdict.ok ? 'ok' : verdict.reason, 'registry_unavailable');
  });

  it('does not ask the registry about a certificate the cheap checks already refuse', async () => {
    let asked = false;
    const verdict = await decideAdmission(
      { peer, clientId: 'spoofed' },
      { now: () => midway, standing: () => ((asked = true), Promise.resolve({ kind: 'unregistered' })) },
    );
    assert.equal(verdict.ok ? 'ok' : verdict.reason, 'client_id_mismatch');
    assert.equal(asked, false);
  });
});
