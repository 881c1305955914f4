// Provisioning's use cases: enroll a device from a CSR, renew a device's certificate, create
// a CA, register an operator's CA. Each is check → sign → record; the registry publishes, and
// the CRLs and trust bundles follow its events. HTTP and MQTT handlers only translate.
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../registry/clock.js';
import { RegistryError } from '../registry/errors.js';
import type { DeviceId, SerialHex } from '../registry/ids.js';
import type { Actor, CaPolicy, CaRecord, CertificateRecord } from '../registry/model.js';
import type { Registry } from '../registry/registry.js';
import { verifyExternalCa, type ExternalCaInput } from './external-ca.js';
import { CredentialError } from './credential-errors.js';
import { checkCsr, type CheckedCsr } from './pki/csr.js';
import type { DeviceCertificate, IssuedCertificate } from './pki/signer.js';
import type { x509 } from './pki/x509.js';
import { keyRefusal, renewalRefusal } from './renewal.js';
import { DEFAULT_CA_ID, ROOT_CA_ID, type CaKeyring } from './pki/keyring.js';
import type { SigningCa } from './rotation.js';
import { Batcher } from '../registry/batcher.js';
import { actorName } from '../registry/changes.js';
import type { CertificateToRecord } from '../registry/lifecycle.js';
import type { BatchKey } from '../registry/queries/batches.js';

export interface ProvisioningOptions {
  /** Lifetime of device certificates under a CA whose policy sets none. */
  certificateLifetimeMs: number;
  /** notBefore is set this far in the past, for devices whose clocks run a little behind. */
  backdateMs: number;
  /** The public base URL of the API (a function: the port is known only once it listens). */
  publicUrl: () => string;
}

export interface ProvisioningDeps {
  registry: Registry;
  keyring: CaKeyring;
  /** Which issuing CA signs now (rotation's current slot). */
  issuing: SigningCa;
  clock: Clock;
  log: Logger;
}

export interface Enrollment {
  record: CertificateRecord;
  certificatePem: string;
  /** PEM of the chain above the certificate, up to the root. */
  chainPem: string;
  /** A batch line retried: the certificate it produced the first time, nothing new minted. */
  replayed?: boolean;
}

/** Where a CA's CRL is published; the first issuing CA keeps the contract's /v1/crl. */
export function crlPath(caId: string): string {
  return caId === DEFAULT_CA_ID ? '/v1/crl' : `/v1/cas/${caId}/crl`;
}

interface PendingRecord {
  item: CertificateToRecord;
  actor: Actor;
}

/** What a certificate is issued for: a checked key, for a device, under a CA. */
interface IssueRequest {
  deviceId: DeviceId;
  key: Pick<CheckedCsr, 'spki' | 'publicKeySha256' | 'keyDescription'>;
  caId: string;
  actor: Actor;
  /** Set for a renewal: the certificate it renews and when that one retires at the latest. */
  renewal?: { from: SerialHex; retiresAt: Date };
  /** The device is registered if the registry does not know it (a factory batch line, EST). */
  register?: boolean;
  /** Set for a factory batch line: the key makes a retry idempotent. */
  batch?: BatchKey;
  /** The key was generated here (and handed over once), not by the device. */
  generatedKey?: boolean;
}

export class Provisioning {
  /** The PEM chain above each CA, root last: a CA's certificate never changes. */
  readonly #chains = new Map<string, string>();
  /** CA records and policies as of the last CA event: read before every signature, changed rarely. */
  readonly #cas = new Map<string, CaRecord>();
  readonly #policies = new Map<string, Promise<CaPolicy>>();
  /** Enrollments in flight share their lookups and their durable commits. */
  readonly #enrollable: Batcher<DeviceId, RegistryError | undefined>;
  readonly #recorder: Batcher<PendingRecord, CertificateRecord | RegistryError>;
  readonly #replays: Batcher<BatchKey, CertificateRecord | undefined>;

  constructor(
    private readonly options: ProvisioningOptions,
    private readonly deps: ProvisioningDeps,
  ) {
    this.#enrollable = new Batcher((ids) => deps.registry.lifecycle.enrollmentRefusals(ids));
    this.#recorder = new Batcher((pending) => recordByActor(deps.registry, pending));
    this.#replays = new Batcher((keys) => deps.registry.lifecycle.batchCertificates(keys));
    deps.registry.bus.subscribe((event) => {
      if (event.type === 'ca.created' || event.type === 'ca.status') this.#cas.clear();
      if (event.type === 'ca.policy') this.#policies.delete(event.caId);
    });
  }

  crlUrl(caId: string): string {
    return `${this.options.publicUrl()}${crlPath(caId)}`;
  }

  /** Signs a device certificate; without `caId`, the issuing CA that signs now. */
  async enroll(deviceId: DeviceId, csrPem: string, actor: Actor, caId = this.deps.issuing.current()): Promise<Enrollment> {
    // The device first (an unknown device is a 404 whatever the CSR); the key is checked in
    // the recording transaction, where it counts.
    const refusal = await this.#enrollable.submit(deviceId);
    if (refusal) throw refusal;
    await this.#signingCa(caId);
    return this.#issue({ deviceId, key: checkCsr(csrPem), caId, actor });
  }

  /**
   * Renews the certificate a device presented (by mutual TLS or on its MQTT session): a new
   * certificate for the same device under the same CA, overlapping the current one, which
   * turns INACTIVE once the new one is seen on a connection or after the CA's grace period.
   */
  async renew(serial: SerialHex, csrPem: string, actor: Actor): Promise<Enrollment> {
    const current = await this.deps.registry.lifecycle.certificate(serial);
    if (!current) throw new CredentialError('client_certificate_unregistered', serial);
    const device = await this.deps.registry.lifecycle.device(current.deviceId);
    const policy = await this.policyOf(current.caId);
    const now = this.deps.clock();
    const refusal = renewalRefusal({ current, device, policy, now });
    if (refusal) throw refusal;
    // Under the same CA while it signs; once rotation has superseded it, under the one that
    // signs now: that is how a fleet moves to a new issuing CA.
    const caId = this.deps.issuing.signs(current.caId) ? current.caId : this.deps.issuing.current();
    await this.#signingCa(caId);
    const key = checkCsr(csrPem);
    const reused = keyRefusal(current, key.publicKeySha256, policy);
    if (reused) throw reused;
    return this.#issue({ deviceId: current.deviceId, key, caId, actor, renewal: { from: current.serial, retiresAt: new Date(now.getTime() + policy.renewalGraceMs) } });
  }

  /**
   * One line of a factory batch: the device is registered if the registry does not know it,
   * and the batch key (the caller's request id and the line's device id) makes a retry return
   * the certificate the line produced the first time instead of minting another.
   */
  async enrollBatchLine(deviceId: DeviceId, csrPem: string, batch: { requestId: string; caId: string }, actor: Actor): Promise<Enrollment> {
    const key: BatchKey = { requestId: batch.requestId, lineId: deviceId };
    const earlier = await this.#replays.submit(key);
    if (earlier) return { record: earlier, certificatePem: earlier.pem, chainPem: await this.chainAbove(earlier.caId), replayed: true };
    await this.#signingCa(batch.caId);
    return this.#issue({ deviceId, key: checkCsr(csrPem), caId: batch.caId, actor, register: true, batch: key });
  }

  /** Enrolls a device from a CSR, registering it first if the registry does not know it (EST simpleenroll). */
  async enrollRegistering(deviceId: DeviceId, csrPem: string, actor: Actor, caId = this.deps.issuing.current()): Promise<Enrollment> {
    await this.#signingCa(caId);
    return this.#issue({ deviceId, key: checkCsr(csrPem), caId, actor, register: true });
  }

  /**
   * Server-side key generation: a fresh P-256 key made here and certified for the device.
   * The private key goes back to the caller only (who returns it once, encrypted); it is
   * neither stored nor logged.
   */
  async enrollWithGeneratedKey(deviceId: DeviceId, actor: Actor, caId = this.deps.issuing.current()): Promise<Enrollment & { privateKey: KeyObject }> {
    const refusal = await this.#enrollable.submit(deviceId);
    if (refusal) throw refusal;
    await this.#signingCa(caId);
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    const key = { spki, publicKeySha256: createHash('sha256').update(spki).digest('hex'), keyDescription: 'EC P-256, generated here' };
    return { ...(await this.#issue({ deviceId, key, caId, actor, generatedKey: true })), privateKey };
  }

  /** The issuing CA that signs new certificates now (rotation's current slot). */
  signingCa(): string {
    return this.deps.issuing.current();
  }

  /** Throws the coded refusal if this CA cannot issue device certificates here now. */
  async assertCanIssue(caId: string): Promise<void> {
    await this.#signingCa(caId);
  }

  /** The policy in force for a CA's certificates. */
  policyOf(caId: string): Promise<CaPolicy> {
    let policy = this.#policies.get(caId);
    if (!policy) {
      policy = this.deps.registry.policies.get(caId);
      this.#policies.set(caId, policy);
      policy.catch(() => this.#policies.delete(caId));
    }
    return policy;
  }

  /** Signs a device certificate for a checked key and records it (records share commits). */
  async #issue(request: IssueRequest): Promise<Enrollment> {
    const { deviceId, key, caId, actor, renewal, register, batch, generatedKey } = request;
    const issued = await this.signDevice(deviceId, key.spki, caId);
    const record = await this.#recorder.submit({
      item: {
        createDevice: register === true,
        batch,
        ...(generatedKey ? { auditDetails: { key: 'generated by the service, returned once encrypted, not kept' } } : {}),
        certificate: {
          serial: issued.serial,
          fingerprint: issued.fingerprint,
          publicKeySha256: key.publicKeySha256,
          deviceId,
          caId,
          notBefore: issued.notBefore,
          notAfter: issued.notAfter,
          pem: issued.pem,
          ...(renewal ? { renewedFrom: renewal.from, predecessorRetiresAt: renewal.retiresAt } : {}),
        },
      },
      actor,
    });
    if (record instanceof RegistryError) throw record;
    // Another attempt of the same batch line recorded first: its certificate is the answer.
    const replayed = record.serial !== issued.serial;
    if (!replayed) this.deps.log.info({ event: 'certificate_issued', deviceId, serial: record.serial, ca: caId, key: key.keyDescription, renewedFrom: renewal?.from }, 'certificate issued');
    return { record, certificatePem: record.pem, chainPem: await this.chainAbove(caId), ...(replayed ? { replayed } : {}) };
  }

  /**
   * Signs a device certificate (CN = the registry's device id) for the key in `spki`, with the
   * policy's lifetime, never past the CA's own notAfter. Records nothing: the caller does.
   */
  async signDevice(deviceId: DeviceId, spki: Buffer, caId = this.deps.issuing.current()): Promise<DeviceCertificate & { caId: string }> {
    const ca = await this.#signingCa(caId);
    const lifetimeMs = (await this.policyOf(caId)).certificateLifetimeMs ?? this.options.certificateLifetimeMs;
    const issued = this.deps.keyring.get(caId)!.issueDevice(deviceId, spki, this.#validity(ca, lifetimeMs), this.crlUrl(caId));
    return Object.assign(issued, { caId });
  }

  /** From a little before now (clocks run behind), for `lifetimeMs`, never past the CA's own notAfter. */
  #validity(ca: CaRecord, lifetimeMs: number): { notBefore: Date; notAfter: Date } {
    const now = this.deps.clock().getTime();
    return { notBefore: new Date(now - this.options.backdateMs), notAfter: new Date(Math.min(now + lifetimeMs, ca.notAfter.getTime())) };
  }

  /** Signs a claim batch's certificate with the issuing CA that signs now. */
  async signClaim(batchId: string, publicKey: x509.PublicKey, lifetimeMs: number): Promise<IssuedCertificate & { caId: string }> {
    const caId = this.deps.issuing.current();
    const ca = await this.#signingCa(caId);
    return { ...(await this.deps.keyring.get(caId)!.issueClaim(batchId, publicKey, this.#validity(ca, lifetimeMs), this.crlUrl(caId))), caId };
  }

  /** Creates a CA under `parentId` (the root by default), signed here. */
  async createCa(id: string, parentId: string | undefined, actor: Actor): Promise<CaRecord> {
    const parent = parentId ?? ROOT_CA_ID;
    await this.#signingCa(parent, { forCas: true });
    if ((await this.deps.registry.authorities.list()).some((c) => c.id === id || c.name === id)) throw new RegistryError('ca_exists', id);
    const record = await this.deps.keyring.create({ id, name: id, parentId: parent, crlUrl: this.crlUrl(parent) }, this.deps.clock).catch((error: unknown) => {
      // Its key file is created exclusively: another request is creating a CA of this id right now.
      throw (error as NodeJS.ErrnoException).code === 'EEXIST' ? new RegistryError('ca_exists', id) : error;
    });
    try {
      return await this.deps.registry.authorities.record(record, actor);
    } catch (error) {
      await this.deps.keyring.discard(id);
      throw error;
    }
  }

  async registerExternalCa(input: ExternalCaInput, actor: Actor): Promise<CaRecord> {
    const { record, code } = await verifyExternalCa(input, this.deps.clock());
    return this.deps.registry.authorities.record(record, actor, code);
  }

  /** A CA this service can sign with now: ours, active, and (for CAs) allowed to. */
  async #signingCa(caId: string, options: { forCas?: boolean } = {}): Promise<CaRecord> {
    let ca = this.#cas.get(caId);
    if (!ca) this.#cas.set(caId, (ca = await this.deps.registry.authorities.get(caId)));
    const signer = this.deps.keyring.get(caId);
    if (ca.status === 'REVOKED') throw new RegistryError('ca_revoked', caId);
    if (!signer || ca.external) throw new RegistryError('ca_cannot_issue', `${caId} has no key here`);
    if (options.forCas && !signer.maySignCas) throw new RegistryError('ca_cannot_issue', `${caId} may not sign CAs (pathLen 0)`);
    if (!options.forCas && caId === ROOT_CA_ID) throw new RegistryError('ca_is_root', 'the root signs CAs only');
    if (!options.forCas && !this.deps.issuing.signs(caId)) throw new RegistryError('ca_not_signing', `${caId}; ${this.deps.issuing.current()} signs now`);
    return ca;
  }

  /** The PEM chain above a CA's certificates: the CA itself and its parents, root last. */
  async chainAbove(caId: string): Promise<string> {
    const cached = this.#chains.get(caId);
    if (cached) return cached;
    const pems: string[] = [];
    for (let id: string | undefined = caId; id !== undefined; ) {
      const ca: CaRecord = await this.deps.registry.authorities.get(id);
      pems.push(ca.pem.trim());
      id = ca.parentId;
    }
    const chain = pems.join('\n') + '\n';
    this.#chains.set(caId, chain);
    return chain;
  }
}

/** One change per actor (the audit log names one actor per change), in the order submitted. */
async function recordByActor(registry: Registry, pending: PendingRecord[]): Promise<(CertificateRecord | RegistryError)[]> {
  const byActor = new Map<string, number[]>();
  pending.forEach((p, i) => {
    const name = actorName(p.actor);
    const indexes = byActor.get(name);
    if (indexes) indexes.push(i);
    else byActor.set(name, [i]);
  });
  const outcomes = new Array<CertificateRecord | RegistryError>(pending.length);
  for (const indexes of byActor.values()) {
    const recorded = await registry.lifecycle.recordIssued(indexes.map((i) => pending[i]!.item), pending[indexes[0]!]!.actor);
    indexes.forEach((index, k) => (outcomes[index] = recorded[k]!));
  }
  return outcomes;
}
