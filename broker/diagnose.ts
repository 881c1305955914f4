// `fleet diagnose`: the broker's admission checks, walked offline for one certificate against
// the registry, each step with its verdict, ending with the one that decides. The TLS
// layer's chain verdict is worked out here the way OpenSSL reaches it, so the same reasons
// come out.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { Clock } from '../registry/clock.js';
import { toFingerprint, type Fingerprint } from '../registry/ids.js';
import type { AdmissionRecord, CaRecord } from '../registry/model.js';
import { connectChecks, registryVerdict, type Standing, type Verdict } from './admission.js';
import { issuerLine, parseCertificates, subjectLine, type PeerCertificateFacts, type PeerFacts } from './peer.js';
import { connackFor, REASONS } from './reasons.js';

export interface DiagnoseInput {
  certificatePem: string;
  keyPem?: string;
  /** The client id the device uses; its CN when not given. */
  clientId?: string;
}

export interface DiagnoseDeps {
  /** What the broker trusts for client certificates. */
  trustPem: string;
  now: Clock;
  registry: {
    admissionRecord(fingerprint: Fingerprint): Promise<AdmissionRecord | undefined>;
    authorities: { list(): Promise<CaRecord[]> };
  };
}

export interface Step {
  name: string;
  passed: boolean;
  detail?: string;
}

export interface Diagnosis {
  certificate?: PeerCertificateFacts;
  steps: Step[];
  verdict: Verdict;
}

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

export function certificateFacts(cert: X509Certificate): PeerCertificateFacts {
  return {
    serial: cert.serialNumber.toLowerCase(),
    fingerprint: toFingerprint(cert.fingerprint256),
    commonName: /^CN=(.*)$/m.exec(cert.subject)?.[1],
    subject: subjectLine(cert),
    issuer: issuerLine(cert),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
  };
}

/** The OpenSSL verification error a TLS server with `trust` would report, or undefined. */
export function chainErrorOf(leaf: X509Certificate, trust: readonly X509Certificate[], now: Date): string | undefined {
  const within = (c: X509Certificate) => now >= new Date(c.validFrom) && now <= new Date(c.validTo);
  let current = leaf;
  for (let depth = 0; depth < 10; depth++) {
    const selfSigned = current.checkIssued(current) && current.verify(current.publicKey);
    if (selfSigned) {
      if (!trust.some((t) => t.fingerprint256 === current.fingerprint256)) return depth === 0 ? 'DEPTH_ZERO_SELF_SIGNED_CERT' : 'SELF_SIGNED_CERT_IN_CHAIN';
      break;
    }
    const issuer = trust.find((t) => current.checkIssued(t) && current.verify(t.publicKey));
    if (!issuer) return depth === 0 ? 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' : 'UNABLE_TO_GET_ISSUER_CERT';
    if (!within(current)) return now < new Date(current.validFrom) ? 'CERT_NOT_YET_VALID' : 'CERT_HAS_EXPIRED';
    current = issuer;
  }
  const usages = leaf.keyUsage;
  if (usages && !usages.includes(CLIENT_AUTH)) return 'INVALID_PURPOSE';
  return undefined;
}

export async function diagnose(input: DiagnoseInput, deps: DiagnoseDeps): Promise<Diagnosis> {
  const steps: Step[] = [];
  const step = (name: string, passed: boolean, detail?: string) => steps.push({ name, passed, detail });
  const refused = (reason: Verdict & { ok: false }) => ({ steps, verdict: reason });

  let cert: X509Certificate;
  try {
    cert = new X509Certificate(input.certificatePem);
  } catch (error) {
    step('certificate parses', false, (error as Error).message);
    return refused({ ok: false, reason: 'certificate_invalid', detail: 'not a PEM certificate' });
  }
  const certificate = certificateFacts(cert);
  step('certificate parses', true, `${certificate.subject}, serial ${certificate.serial}, issued by ${certificate.issuer}`);

  if (input.keyPem !== undefined) {
    const matches = keyMatches(cert, input.keyPem);
    step('private key matches the certificate', matches, matches ? undefined : 'the TLS handshake would fail before MQTT');
    if (!matches) return { certificate, ...refused({ ok: false, reason: 'tls_handshake_failed', detail: 'key does not match the certificate' }) };
  }

  const now = deps.now();
  const cas = await deps.registry.authorities.list();
  const knownIssuers = new Set(cas.flatMap((ca) => parseCertificates(ca.pem)).map(subjectLine));
  const peer: PeerFacts = { address: 'offline', chainError: chainErrorOf(cert, parseCertificates(deps.trustPem), now), certificate };
  const clientId = input.clientId ?? certificate.commonName ?? '';
  const ctx = { peer, clientId, certificate };
  const checkDeps = { now: deps.now, standing: () => Promise.reject(new Error('not used')), knownIssuer: (issuer: string) => knownIssuers.has(issuer) };
  for (const check of connectChecks) {
    const failed = check.run(ctx, checkDeps);
    step(check.name, !failed, failed?.detail ?? (check.name.startsWith('client id') && input.clientId === undefined ? 'assuming the client id is the CN' : undefined));
    if (failed) return { certificate, steps, verdict: failed };
  }

  let standing: Standing;
  try {
    const record = await deps.registry.admissionRecord(certificate.fingerprint);
    standing = record ? { kind: 'registered', record } : { kind: 'unregistered' };
  } catch (error) {
    step('registry answers', false, (error as Error).message);
    return { certificate, ...refused({ ok: false, reason: 'registry_unavailable' }) };
  }
  const verdict = registryVerdict(standing, certificate);
  let detail = standing.kind === 'registered' ? `device ${standing.record.deviceId}: certificate ${standing.record.certificateStatus}, device ${standing.record.deviceStatus}` : 'not in the registry';
  if (standing.kind === 'unregistered') {
    const operatorCa = cas.find((ca) => ca.external && parseCertificates(ca.pem).some((c) => cert.checkIssued(c) && cert.verify(c.publicKey)));
    if (operatorCa) detail += `; signed by operator CA ${operatorCa.id}, whose policy for unknown certificates is ${operatorCa.unknownCertificates ?? 'refuse'}`;
  }
  step('registry: certificate good, device active', verdict.ok, verdict.ok ? detail : `${detail} (${verdict.detail ?? verdict.reason})`);
  return { certificate, steps, verdict };
}

function keyMatches(cert: X509Certificate, keyPem: string): boolean {
  try {
    return cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false; // not a key at all
  }
}

export function formatDiagnosis(d: Diagnosis): string {
  const out = d.steps.map((s, i) => `${String(i + 1).padStart(2)}. ${s.passed ? 'pass' : 'FAIL'}  ${s.name}${s.detail ? `\n          ${s.detail}` : ''}`);
  if (d.verdict.ok) out.push('', `verdict: admitted as ${d.verdict.deviceId}`);
  else {
    const info = REASONS[d.verdict.reason] as { connack?: number };
    out.push('', `verdict: refused — ${d.verdict.reason}: ${REASONS[d.verdict.reason].summary}${info.connack ? ` (CONNACK ${connackFor(d.verdict.reason)})` : ''}`, 'see docs/reasons.md for what to do about it');
  }
  return out.join('\n');
}
