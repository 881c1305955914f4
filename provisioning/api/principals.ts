// Who is calling: an operator (bearer token), a factory station or a device (a client
// certificate over mutual TLS). A certificate goes through the checks the broker applies at
// CONNECT — the TLS layer's chain verdict, validity on the service's clock, the registry's
// status — so a certificate the broker would refuse calls nothing here either. The one
// exception: on a renewal route, a device's certificate that expired within its CA's renewal
// window still identifies the device (a device back from months offline renews with it).
import type { FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import { chainReason, recordChecks, validityProblem, type CertificateProblem, type Problem } from '../../registry/certificate-checks.js';
import type { Clock } from '../../registry/clock.js';
import type { DeviceId, Fingerprint } from '../../registry/ids.js';
import type { Actor, AdmissionRecord, Operator, Station } from '../../registry/model.js';
import { peerFactsOf, type PeerCertificateFacts, type PeerFacts } from '../../registry/peer-certificate.js';
import type { Role } from '../../registry/roles.js';
import { ApiError, type ApiErrorCode } from './errors.js';

export type Principal =
  | { kind: 'operator'; name: string; roles: readonly string[] }
  | { kind: 'station'; name: string; roles: readonly string[]; certificate: PeerCertificateFacts }
  | { kind: 'device'; deviceId: DeviceId; roles: readonly Role[]; certificate: PeerCertificateFacts; record: AdmissionRecord };

export type DevicePrincipal = Extract<Principal, { kind: 'device' }>;

export function actorOf(principal: Principal): Actor {
  switch (principal.kind) {
    case 'operator':
      return { kind: 'operator', id: principal.name };
    case 'station':
      return { kind: 'station', id: principal.name };
    case 'device':
      return { kind: 'device', id: principal.deviceId };
  }
}

/** What resolving a principal needs from the registry (a narrow port). */
export interface PrincipalDirectory {
  operators: { authenticate(token: string): Promise<Operator | undefined> };
  stations: { byFingerprint(fingerprint: Fingerprint): Promise<Station | undefined> };
  admissionRecord(fingerprint: Fingerprint): Promise<AdmissionRecord | undefined>;
  /** How long after notAfter a certificate of this CA may still renew itself (0: not at all). */
  renewalWindowMs(caId: string): Promise<number>;
  /** Whether an issuer name belongs to a CA the registry knows. */
  knownIssuer(issuer: string): Promise<boolean>;
}

// A certificate problem, as the API names it: the broker's reason, for a caller of the API.
const PROBLEM_CODES: Record<CertificateProblem, ApiErrorCode> = {
  unknown_issuer: 'client_certificate_untrusted',
  chain_incomplete: 'client_certificate_untrusted',
  wrong_key_usage: 'client_certificate_untrusted',
  certificate_invalid: 'client_certificate_untrusted',
  client_id_mismatch: 'client_certificate_untrusted',
  certificate_expired: 'client_certificate_expired',
  certificate_not_yet_valid: 'client_certificate_expired',
  certificate_revoked: 'client_certificate_revoked',
  certificate_inactive: 'client_certificate_inactive',
  device_disabled: 'device_disabled',
};

function refused(p: Problem, record?: AdmissionRecord): ApiError {
  const code = p.reason === 'device_disabled' && record?.deviceStatus === 'DECOMMISSIONED' ? 'device_decommissioned' : PROBLEM_CODES[p.reason];
  return new ApiError(code, `${p.reason}${p.detail ? `: ${p.detail}` : ''}`);
}

/** The client certificate of a request, read once per TLS connection. */
const peers = new WeakMap<object, PeerFacts>();
function peerOf(request: FastifyRequest): PeerFacts | undefined {
  const socket = request.raw.socket as TLSSocket;
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  let facts = peers.get(socket);
  if (!facts) peers.set(socket, (facts = peerFactsOf(socket)));
  return facts;
}

export interface ResolveOptions {
  /** A renewal route: an expired device certificate within its CA's renewal window is accepted. */
  renewal?: boolean;
}

export function principalResolver(directory: PrincipalDirectory, clock: Clock) {
  async function fromToken(header: string): Promise<Principal> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const operator = match ? await directory.operators.authenticate(match[1]!) : undefined;
    if (!operator) throw new ApiError('token_invalid');
    return { kind: 'operator', name: operator.name, roles: operator.roles };
  }

  async function chainProblem(peer: PeerFacts, certificate: PeerCertificateFacts): Promise<Problem | undefined> {
    if (peer.chainError === undefined) return undefined;
    const known = await directory.knownIssuer(certificate.issuer);
    return { reason: chainReason(peer.chainError, certificate.issuer, () => known), detail: peer.chainError };
  }

  async function fromCertificate(peer: PeerFacts, certificate: PeerCertificateFacts, options: ResolveOptions): Promise<Principal> {
    // A claim certificate is shared by a whole production batch: it may only open claim
    // sessions on the broker, never stand for a device or station here, whatever the registry says.
    if (certificate.claimBatch !== undefined) throw new ApiError('client_certificate_claim', `claim batch ${certificate.claimBatch}`);
    const now = clock();
    const station = await directory.stations.byFingerprint(certificate.fingerprint);
    if (station) {
      const problem = (await chainProblem(peer, certificate)) ?? validityProblem(certificate, now);
      if (problem) throw refused(problem);
      if (station.status === 'REVOKED') throw new ApiError('client_certificate_revoked', `station ${station.name}`);
      return { kind: 'station', name: station.name, roles: station.roles, certificate };
    }

    const record = await directory.admissionRecord(certificate.fingerprint);
    if (!record) {
      const problem = await chainProblem(peer, certificate);
      throw problem ? refused(problem) : new ApiError('client_certificate_unregistered');
    }
    // An expired device certificate may still renew itself within its CA's window, and do
    // nothing else. The TLS layer then reports the expiry as a chain error, on its own clock.
    const expired = validityProblem(certificate, now)?.reason === 'certificate_expired';
    const waiveExpiry = expired && options.renewal === true && now.getTime() <= certificate.notAfter.getTime() + (await directory.renewalWindowMs(record.caId ?? ''));
    const checks = [await chainProblem(peer, certificate), validityProblem(certificate, now), ...recordChecks.map((check) => check(record, certificate))];
    const problem = checks.find((p) => p !== undefined && !(waiveExpiry && p.reason === 'certificate_expired'));
    if (problem) throw refused(problem, record);
    return { kind: 'device', deviceId: record.deviceId, roles: ['device'], certificate, record };
  }

  /** The principal behind a request; throws the coded 401 that says why there is none. */
  return async function resolve(request: FastifyRequest, options: ResolveOptions = {}): Promise<Principal> {
    const header = request.headers.authorization;
    if (header) return fromToken(header);
    const peer = peerOf(request);
    if (peer?.certificate) return fromCertificate(peer, peer.certificate, options);
    throw new ApiError('token_missing');
  };
}
