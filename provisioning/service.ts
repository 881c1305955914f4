// Provisioning's use cases: enroll a device from a CSR, create a CA, register an operator's
// CA. Each is check → sign → record; the registry publishes, and the CRLs and trust bundles
// follow its events. HTTP handlers only translate.
import type { Logger } from 'pino';
import type { Clock } from '../registry/clock.js';
import { RegistryError } from '../registry/errors.js';
import type { DeviceId } from '../registry/ids.js';
import type { Actor, CaRecord, CertificateRecord } from '../registry/model.js';
import type { Registry } from '../registry/registry.js';
import { verifyExternalCa, type ExternalCaInput } from './external-ca.js';
import { checkCsr } from './pki/csr.js';
import type { DeviceCertificate, IssuedCertificate } from './pki/signer.js';
import type { x509 } from './pki/x509.js';
import { DEFAULT_CA_ID, ROOT_CA_ID, type CaKeyring } from './pki/keyring.js';
import type { SigningCa } from './rotation.js';
import { Batcher } from '../registry/batcher.js';
import { actorName } from '../registry/changes.js';
import type { NewCertificate } from '../registry/lifecycle.js';

export interface ProvisioningOptions {
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
}

/** Where a CA's CRL is published; the first issuing CA keeps the contract's /v1/crl. */
export function crlPath(caId: string): string {
  return caId === DEFAULT_CA_ID ? '/v1/crl' : `/v1/cas/${caId}/crl`;
}

interface PendingRecord {
  certificate: NewCertificate;
  actor: Actor;
}

export class Provisioning {
  /** The PEM chain above each CA, root last: a CA's certificate never changes. */
  readonly #chains = new Map<string, string>();
  /** CA records as of the last CA event: read before every signature, changed rarely. */
  readonly #cas = new Map<string, CaRecord>();
  /** Enrollments in flight share their lookups and their durable commits. */
  readonly #enrollable: Batcher<DeviceId, RegistryError | undefined>;
  readonly #recorder: Batcher<PendingRecord, CertificateRecord | RegistryError>;

  constructor(
    private readonly options: ProvisioningOptions,
    private readonly deps: ProvisioningDeps,
  ) {
    this.#enrollable = new Batcher((ids) => deps.registry.lifecycle.enrollmentRefusals(ids));
    this.#recorder = new Batcher((pending) => recordByActor(deps.registry, pending));
    deps.registry.bus.subscribe((event) => {
      if (event.type === 'ca.created' || event.type === 'ca.status') this.#cas.clear();
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
    const csr = checkCsr(csrPem);
    const issued = await this.signDevice(deviceId, csr.spki, caId);
    const record = await this.#recorder.submit({
      certificate: { serial: issued.serial, fingerprint: issued.fingerprint, publicKeySha256: csr.publicKeySha256, deviceId, caId, notBefore: issued.notBefore, notAfter: issued.notAfter, pem: issued.pem },
      actor,
    });
    if (record instanceof RegistryError) throw record;
    this.deps.log.info({ event: 'certificate_issued', deviceId, serial: record.serial, ca: caId, key: csr.keyDescription }, 'certificate issued');
    return { record, certificatePem: issued.pem, chainPem: await this.chainAbove(caId) };
  }

  /**
   * Signs a device certificate (CN = the registry's device id) for the key in `spki`, with the
   * policy's lifetime, never past the CA's own notAfter. Records nothing: the caller does.
   */
  async signDevice(deviceId: DeviceId, spki: Buffer, caId = this.deps.issuing.current()): Promise<DeviceCertificate & { caId: string }> {
    const ca = await this.#signingCa(caId);
    const now = this.deps.clock().getTime();
    const issued = this.deps.keyring.get(caId)!.issueDevice(
      deviceId,
      spki,
      { notBefore: new Date(now - this.options.backdateMs), notAfter: new Date(Math.min(now + this.options.certificateLifetimeMs, ca.notAfter.getTime())) },
      this.crlUrl(caId),
    );
    return Object.assign(issued, { caId });
  }

  /** Signs a claim batch's certificate with the issuing CA that signs now. */
  async signClaim(batchId: string, publicKey: x509.PublicKey, lifetimeMs: number): Promise<IssuedCertificate & { caId: string }> {
    const caId = this.deps.issuing.current();
    const ca = await this.#signingCa(caId);
    const now = this.deps.clock().getTime();
    const validity = { notBefore: new Date(now - this.options.backdateMs), notAfter: new Date(Math.min(now + lifetimeMs, ca.notAfter.getTime())) };
    return { ...(await this.deps.keyring.get(caId)!.issueClaim(batchId, publicKey, validity, this.crlUrl(caId))), caId };
  }

  /** Creates a CA under `parentId` (the root by default), signed here. */
  async createCa(id: string, parentId: string | undefined, actor: Actor): Promise<CaRecord> {
    const parent = parentId ?? ROOT_CA_ID;
    await this.#signingCa(parent, { forCas: true });
    if ((await this.deps.registry.authorities.list()).some((c) => c.id === id || c.name === id)) throw new RegistryError('ca_exists', id);
    const record = await this.deps.keyring.create({ id, name: id, parentId: parent, crlUrl: this.crlUrl(parent) }, this.deps.clock);
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
    const recorded = await registry.lifecycle.recordCertificates(indexes.map((i) => pending[i]!.certificate), pending[indexes[0]!]!.actor);
    indexes.forEach((index, k) => (outcomes[index] = recorded[k]!));
  }
  return outcomes;
}
