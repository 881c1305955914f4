// One CRL per CA this service signs with: rebuilt from the registry whenever a revocation
// touches that CA and before it goes stale, kept in memory for the API and written to disk
// for tools that read files.
import { promises as fs } from 'node:fs';
import type { Logger } from 'pino';
import type { Clock } from '../registry/clock.js';
import type { RegistryEvent } from '../registry/events.js';
import type { SerialHex } from '../registry/ids.js';
import { coalesced } from './coalesce.js';
import { toPem } from './pki/pem.js';
import type { CaKeyring } from './pki/keyring.js';
import type { CaSigner } from './pki/signer.js';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface CrlEntry {
  serial: SerialHex;
  revokedAt: Date;
  revocationReason?: string;
}

// Reason names an operator may give that RFC 5280 §5.3.1 has a code for.
const REASON_CODES: Record<string, number> = {
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  privilegeWithdrawn: 9,
};

/** PEM with the label OpenSSL and Node read (`X509 CRL`), not the library's `CRL`. */
export function crlToPem(der: Buffer): string {
  return toPem('X509 CRL', der);
}

export class CrlPublisher {
  #der?: Buffer;
  #thisUpdate?: Date;
  #crlNumber = 0n;
  /**
   * Rebuilds the CRL. Resolves once a CRL built after this call started is in place; calls
   * that arrive during a build share one follow-up build instead of each starting their own.
   */
  readonly refresh = coalesced(() => this.#build());

  constructor(
    private readonly signer: CaSigner,
    private readonly entries: () => Promise<CrlEntry[]>,
    private readonly clock: Clock,
    private readonly options: { path: string; validityMs: number },
  ) {}

  /** The current CRL in DER. */
  get der(): Buffer {
    if (!this.#der) throw new Error('CRL not built yet');
    return this.#der;
  }

  /** Whether more than half the CRL's validity has passed since it was built. */
  get stale(): boolean {
    return this.clock().getTime() - (this.#thisUpdate?.getTime() ?? 0) > this.options.validityMs / 2;
  }

  async #build(): Promise<void> {
    const thisUpdate = this.clock();
    const entries = await this.entries();
    const der = this.signer.signCrl(
      entries.map((r) => ({ serial: r.serial, revokedAt: r.revokedAt, reason: r.revocationReason ? REASON_CODES[r.revocationReason] : undefined })),
      { thisUpdate, nextUpdate: new Date(thisUpdate.getTime() + this.options.validityMs), crlNumber: this.#nextCrlNumber(thisUpdate) },
    );
    const tmp = `${this.options.path}.tmp`;
    await fs.writeFile(tmp, crlToPem(der));
    await fs.rename(tmp, this.options.path);
    this.#der = der;
    this.#thisUpdate = thisUpdate;
  }

  // RFC 5280 §5.2.3: strictly increasing. Epoch milliseconds keep that across restarts;
  // the +1 keeps it within one process even if two builds share a millisecond.
  #nextCrlNumber(at: Date): bigint {
    const candidate = BigInt(at.getTime());
    this.#crlNumber = candidate > this.#crlNumber ? candidate : this.#crlNumber + 1n;
    return this.#crlNumber;
  }
}

/**
 * The CRLs of every CA with a signer here, refreshed by the registry's events: a revoked
 * certificate (or claim batch) refreshes its CA's CRL, a revoked CA its parent's.
 */
export class Crls {
  readonly #publishers = new Map<string, CrlPublisher>();
  #timer?: NodeJS.Timeout;

  constructor(
    private readonly keyring: CaKeyring,
    private readonly entriesOf: (caId: string) => Promise<CrlEntry[]>,
    private readonly parentOf: (caId: string) => Promise<string | undefined>,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly validityMs = 7 * DAY_MS,
  ) {}

  /** Builds the CRL of each given CA and keeps them fresh. */
  async start(caIds: string[]): Promise<void> {
    await Promise.all(caIds.map((id) => this.ensure(id)));
    this.#timer = setInterval(() => {
      for (const publisher of this.#publishers.values()) if (publisher.stale) void this.#refresh(publisher);
    }, Math.min(DAY_MS, this.validityMs / 4));
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** The CRL of a CA, once built. */
  der(caId: string): Buffer | undefined {
    const publisher = this.#publishers.get(caId);
    try {
      return publisher?.der;
    } catch {
      return undefined;
    }
  }

  /** Starts publishing the CRL of a CA that can sign here (no-op otherwise). */
  async ensure(caId: string): Promise<void> {
    if (this.#publishers.has(caId)) return;
    const signer = this.keyring.get(caId);
    if (!signer) return;
    const publisher = new CrlPublisher(signer, () => this.entriesOf(caId), this.clock, { path: this.keyring.crlPath(caId), validityMs: this.validityMs });
    this.#publishers.set(caId, publisher);
    await publisher.refresh();
  }

  /** Rebuilds every CRL, for when revocation events may have been missed. */
  async refreshAll(): Promise<void> {
    await Promise.all([...this.#publishers.values()].map((publisher) => this.#refresh(publisher)));
  }

  /** An event handler: the returned promise settles once the affected CRLs are rebuilt. */
  async apply(event: RegistryEvent): Promise<void> {
    let caId: string | undefined;
    if ((event.type === 'certificate.status' || event.type === 'claim_batch.status' || event.type === 'station.status') && event.status === 'REVOKED') caId = event.caId;
    else if (event.type === 'ca.status' && event.status === 'REVOKED') caId = await this.parentOf(event.caId);
    else if (event.type === 'ca.created') return this.ensure(event.caId);
    const publisher = caId === undefined ? undefined : this.#publishers.get(caId);
    if (publisher) await this.#refresh(publisher);
  }

  // The revocation is already durable and enforced by the broker; a CRL that fails to build
  // is logged loudly and rebuilt on the next revocation or timer, not reported as a failed
  // revocation.
  #refresh(publisher: CrlPublisher): Promise<void> {
    return publisher.refresh().catch((err: unknown) => this.log.error({ err, event: 'crl_build_failed' }, 'CRL could not be rebuilt'));
  }
}
