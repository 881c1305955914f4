// Just-in-time registration: a certificate the registry does not know, signed by an
// operator's own CA, is registered (or refused) as that CA's policy says. Only this path
// ever parses the peer certificate again, and only on a registry miss.
import { createHash, X509Certificate } from 'node:crypto';
import type { JitOutcome, UnknownCertificate } from '../registry/authorities.js';
import type { SerialHex } from '../registry/ids.js';
import type { CaRecord } from '../registry/model.js';
import type { PeerCertificateFacts } from './peer.js';

export interface JitRegistry {
  /** Operators' CAs (external ones); revoked ones included, so their refusals are audited. */
  externalCas(): Promise<CaRecord[]>;
  registerUnknown(caId: string, cert: UnknownCertificate): Promise<JitOutcome>;
  /** Whether the CA's own CRL (imported from pki/crls/) lists this serial. */
  revokedByCrl(caId: string, serial: string): boolean;
}

export class JustInTime {
  #cas?: Promise<{ record: CaRecord; certificate: X509Certificate }[]>;

  constructor(private readonly registry: JitRegistry) {}

  /** Drops the cached CA list (on any CA event). */
  forget(): void {
    this.#cas = undefined;
  }

  /**
   * The outcome for a certificate signed by an operator's CA; undefined if none signed it,
   * 'revoked' if that CA's CRL lists it (nothing is registered then).
   */
  async consider(der: Buffer, facts: PeerCertificateFacts): Promise<JitOutcome | 'revoked' | undefined> {
    const cas = await (this.#cas ??= this.#load());
    if (cas.length === 0) return undefined;
    const certificate = new X509Certificate(der);
    const issuer = cas.find((ca) => certificate.checkIssued(ca.certificate) && certificate.verify(ca.certificate.publicKey));
    if (!issuer) return undefined;
    if (this.registry.revokedByCrl(issuer.record.id, facts.serial)) return 'revoked';
    return this.registry.registerUnknown(issuer.record.id, {
      serial: facts.serial as SerialHex,
      fingerprint: facts.fingerprint,
      publicKeySha256: createHash('sha256').update(certificate.publicKey.export({ type: 'spki', format: 'der' })).digest('hex'),
      commonName: facts.commonName,
      notBefore: facts.notBefore,
      notAfter: facts.notAfter,
      pem: certificate.toString(),
    });
  }

  async #load() {
    try {
      return (await this.registry.externalCas()).map((record) => ({ record, certificate: new X509Certificate(record.pem) }));
    } catch (error) {
      this.#cas = undefined; // try again next time
      throw error;
    }
  }
}
