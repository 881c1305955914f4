// Fleet provisioning by claim: a production batch's devices share one short-lived claim
// certificate, and each turns it into an identity of its own in two steps over MQTT.
//
// 1. create-from-csr {csr, parameters}: the batch's template turns the parameters into the
//    device (id, attributes, groups); the pre-provisioning hook, if any, allows, denies or
//    overrides parameters; only then is a certificate signed — CN = that device id, whatever
//    the CSR says (invariant 4) — and recorded PENDING_ACTIVATION, so it admits nothing yet.
// 2. register {deviceId, serial}: the device confirms it holds the certificate; the registry
//    binds it (attributes, group memberships) and activates it. The device then reconnects
//    as itself.
//
// The hook runs before signing, so a denied device never holds a certificate to revoke.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../../registry/clock.js';
import { CodedError, RegistryError } from '../../registry/errors.js';
import { isDeviceId, parseSerial } from '../../registry/ids.js';
import type { Actor, ClaimBatch, ClaimHook, JsonObject } from '../../registry/model.js';
import type { Registry } from '../../registry/registry.js';
import { checkCsr } from '../pki/csr.js';
import { generateKeyPair, privateKeyToPem } from '../pki/keys.js';
import { x509 } from '../pki/x509.js';
import type { Provisioning } from '../service.js';
import { ClaimError } from './errors.js';
import { askHook, type HookRequest } from './hook.js';
import { checkTemplate, renderBinding, type RenderedBinding } from './template.js';

const DAY_MS = 24 * 60 * 60 * 1000;
export const CLAIM_DEFAULTS = Object.freeze({ validityMs: 7 * DAY_MS, rateLimit: Object.freeze({ perSecond: 10, burst: 50 }), hookTimeoutMs: 5000 });

export interface NewClaimBatch {
  name: string;
  template: Parameters<typeof checkTemplate>[0];
  validitySeconds?: number;
  rateLimit?: { perSecond: number; burst: number };
  hook?: { url: string; timeoutMs?: number };
  /** The claim key's CSR; without one a key is generated and returned once. */
  csr?: string;
}

export interface CreatedClaimBatch {
  batch: ClaimBatch;
  chainPem: string;
  /** The generated claim key (PKCS#8 PEM), when no CSR was given: returned once, never kept. */
  keyPem?: string;
}

/** What a claim session is, as far as a claim request goes. */
export interface ClaimContext {
  batchId: string;
  clientId: string;
  peer: string;
}

/** How a refused claim is counted (one refusal reason per kind, on the broker's side). */
export type ClaimRejectionKind = 'invalid' | 'replayed' | 'identity' | 'hook' | 'unavailable';

export type ClaimOutcome = { ok: true; reply: JsonObject } | { ok: false; code: string; message: string; kind: ClaimRejectionKind };

const KINDS: Record<string, ClaimRejectionKind> = {
  public_key_in_use: 'replayed',
  claim_already_registered: 'replayed',
  certificate_revoked: 'replayed',
  claim_device_exists: 'identity',
  device_decommissioned: 'identity',
  device_disabled: 'identity',
  claim_hook_denied: 'hook',
  claim_hook_failed: 'hook',
  claim_hook_timeout: 'hook',
  claim_unavailable: 'unavailable',
};

export interface ClaimDeps {
  registry: Registry;
  provisioning: Provisioning;
  clock: Clock;
  log: Logger;
}

export class ClaimProvisioning {
  constructor(private readonly deps: ClaimDeps) {}

  /** Creates a claim batch and its claim certificate (from the CSR given, or a new key). */
  async createBatch(input: NewClaimBatch, actor: Actor): Promise<CreatedClaimBatch> {
    const template = checkTemplate(input.template);
    // Checked again when recording; this spares signing a certificate for a name taken.
    if (await this.deps.registry.claims.find(input.name)) throw new RegistryError('claim_batch_exists', input.name);
    let spki: Buffer;
    let keyPem: string | undefined;
    if (input.csr !== undefined) spki = checkCsr(input.csr).spki;
    else {
      const keys = await generateKeyPair();
      spki = Buffer.from((await x509.PublicKey.create(keys.publicKey)).rawData);
      keyPem = await privateKeyToPem(keys.privateKey);
    }
    const publicKeySha256 = createHash('sha256').update(spki).digest('hex');
    const issued = await this.deps.provisioning.signClaim(input.name, new x509.PublicKey(spki), (input.validitySeconds ?? CLAIM_DEFAULTS.validityMs / 1000) * 1000);
    const hook: ClaimHook | undefined = input.hook && { url: input.hook.url, timeoutMs: input.hook.timeoutMs ?? CLAIM_DEFAULTS.hookTimeoutMs };
    const batch = await this.deps.registry.claims.create(
      {
        id: input.name,
        status: 'ACTIVE',
        template,
        hook,
        rateLimit: input.rateLimit ?? { ...CLAIM_DEFAULTS.rateLimit },
        caId: issued.caId,
        serial: issued.serial,
        fingerprint: issued.fingerprint,
        publicKeySha256,
        pem: issued.pem,
        notBefore: issued.notBefore,
        notAfter: issued.notAfter,
        createdAt: this.deps.clock(),
      },
      actor,
    );
    return { batch, chainPem: await this.deps.provisioning.chainAbove(issued.caId), keyPem };
  }

  /** Step 1: a certificate for the device the parameters name, PENDING_ACTIVATION. */
  createFromCsr(context: ClaimContext, request: { csr: string; parameters: Record<string, unknown> }): Promise<ClaimOutcome> {
    return this.#outcome('create-from-csr', context, async (actor) => {
      const batch = await this.deps.registry.claims.get(context.batchId);
      const csr = checkCsr(request.csr);
      const asked = renderBinding(batch.template, request.parameters);
      // Refusals the registry would make come first: the hook is asked only about a claim that can succeed.
      await this.deps.registry.claims.issuable(batch.id, asked.deviceId, csr.publicKeySha256);
      const binding = batch.hook ? await this.#askHook(batch, asked, { batch: batch.id, deviceId: asked.deviceId, parameters: asked.parameters, publicKeySha256: csr.publicKeySha256, clientId: context.clientId, peer: context.peer }) : asked;
      if (binding.deviceId !== asked.deviceId) await this.deps.registry.claims.issuable(batch.id, binding.deviceId, csr.publicKeySha256);
      const issued = await this.deps.provisioning.signDevice(binding.deviceId, csr.spki);
      const record = await this.deps.registry.claims.recordIssued(
        batch.id,
        { serial: issued.serial, fingerprint: issued.fingerprint, publicKeySha256: csr.publicKeySha256, deviceId: binding.deviceId, caId: issued.caId, notBefore: issued.notBefore, notAfter: issued.notAfter, pem: issued.pem },
        { parameters: binding.parameters, attributes: binding.attributes, groups: binding.groups },
        actor,
      );
      return {
        deviceId: record.deviceId,
        serial: record.serial,
        fingerprint: record.fingerprint,
        status: record.status,
        certificate: issued.pem,
        chain: await this.deps.provisioning.chainAbove(record.caId),
        notBefore: record.notBefore.toISOString(),
        notAfter: record.notAfter.toISOString(),
      };
    });
  }

  /** Step 2: binds the certificate create-from-csr issued to its device, and activates it. */
  register(context: ClaimContext, request: { deviceId: string; serial: string; parameters?: Record<string, unknown> }): Promise<ClaimOutcome> {
    return this.#outcome('register', context, async (actor) => {
      const serial = parseSerial(request.serial);
      if (!isDeviceId(request.deviceId) || !serial) throw new RegistryError('claim_binding_unknown', 'deviceId or serial is malformed');
      const batch = await this.deps.registry.claims.get(context.batchId);
      // Parameters, when repeated here, must still name the same device.
      if (request.parameters && renderBinding(batch.template, request.parameters).deviceId !== request.deviceId) throw new ClaimError('claim_parameters_invalid', 'they name another device');
      const { certificate, binding } = await this.deps.registry.claims.register(batch.id, request.deviceId, serial, actor);
      return { deviceId: certificate.deviceId, serial: certificate.serial, status: certificate.status, attributes: binding.attributes, groups: binding.groups };
    });
  }

  async #askHook(batch: ClaimBatch, binding: RenderedBinding, question: HookRequest): Promise<RenderedBinding> {
    const decision = await askHook(batch.hook!, question);
    if (!decision.allow) throw new ClaimError('claim_hook_denied', decision.reason);
    if (Object.keys(decision.parameters).length === 0) return binding;
    try {
      return renderBinding(batch.template, { ...binding.parameters, ...decision.parameters });
    } catch (error) {
      throw new ClaimError('claim_hook_failed', `its overrides do not fit the template: ${(error as Error).message}`);
    }
  }

  /** Runs one claim request as its claim session, turning every failure into a coded rejection. */
  async #outcome(request: string, context: ClaimContext, work: (actor: Actor) => Promise<JsonObject>): Promise<ClaimOutcome> {
    const actor: Actor = { kind: 'claim', id: `${context.batchId}/${context.clientId.split('/').pop()}` };
    try {
      const reply = await work(actor);
      this.deps.log.info({ event: 'claim_accepted', request, batch: context.batchId, clientId: context.clientId, deviceId: reply.deviceId, serial: reply.serial }, `claim ${request} accepted`);
      return { ok: true, reply };
    } catch (error) {
      if (error instanceof CodedError) {
        const code = error.code as string;
        return { ok: false, code, message: error.message, kind: KINDS[code] ?? 'invalid' };
      }
      this.deps.log.error({ err: error, event: 'claim_failed', request, batch: context.batchId, clientId: context.clientId }, 'claim request failed');
      const unavailable = new ClaimError('claim_unavailable');
      return { ok: false, code: unavailable.code, message: unavailable.message, kind: 'unavailable' };
    }
  }
}
