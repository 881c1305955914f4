// A CRL (RFC 5280 §5) written directly as DER and signed with node:crypto: linear in its
// entries, where @peculiar/x509's generator is quadratic (a 10,000-entry CRL took 7 s) and
// labels its PEM in a way OpenSSL refuses.
import { sign, type KeyObject } from 'node:crypto';
import { bitString, enumerated, explicit, extension, integerFromBigInt, integerFromHex, oid, sequence, sequenceOf, tlv, time } from './der.js';

const ECDSA_WITH_SHA256 = sequence(oid('1.2.840.10045.4.3.2'));
const ID_CE_CRL_REASONS = '2.5.29.21';
const ID_CE_CRL_NUMBER = '2.5.29.20';
const ID_CE_AUTHORITY_KEY_IDENTIFIER = '2.5.29.35';

export interface CrlEntryDer {
  /** Hex serial. */
  serial: string;
  revokedAt: Date;
  /** RFC 5280 §5.3.1 CRLReason code; absent (unspecified) when not given. */
  reason?: number;
}

export interface CrlParams {
  /** The issuer's Name, DER, exactly as in its certificate's subject. */
  issuerName: Buffer;
  /** The issuer's subject key identifier, hex. */
  authorityKeyId: string;
  thisUpdate: Date;
  nextUpdate: Date;
  crlNumber: bigint;
  entries: readonly CrlEntryDer[];
  /** The issuer's EC P-256 private key. */
  key: KeyObject;
}

export function signCrlDer(p: CrlParams): Buffer {
  const revoked = p.entries.map((e) => {
    const fields = [integerFromHex(e.serial), time(e.revokedAt)];
    // Reason 0 (unspecified) is not encoded: RFC 5280 §5.3.1 says SHOULD be absent.
    if (e.reason !== undefined && e.reason !== 0) fields.push(sequence(extension(ID_CE_CRL_REASONS, enumerated(e.reason))));
    return sequence(...fields);
  });
  const extensions = sequence(
    // keyIdentifier [0] IMPLICIT OCTET STRING
    extension(ID_CE_AUTHORITY_KEY_IDENTIFIER, sequence(tlv(0x80, Buffer.from(p.authorityKeyId, 'hex')))),
    extension(ID_CE_CRL_NUMBER, integerFromBigInt(p.crlNumber)),
  );
  const tbs = sequence(
    tlv(0x02, Buffer.from([1])), // version v2
    ECDSA_WITH_SHA256,
    p.issuerName,
    time(p.thisUpdate),
    time(p.nextUpdate),
    ...(revoked.length > 0 ? [sequenceOf(revoked)] : []),
    explicit(0, extensions),
  );
  const signature = sign('sha256', tbs, { key: p.key, dsaEncoding: 'der' });
  return sequence(tbs, ECDSA_WITH_SHA256, bitString(signature));
}

