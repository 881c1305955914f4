// Device certificates written directly as DER: their shape never changes, only the serial,
// validity, device id, key and CRL location do. Everything else (the issuer's Name, the
// algorithm identifiers, the fixed extensions and the AKI) is encoded once per issuer, and a
// certificate is those bytes with the variable fields spliced in. Signed with node:crypto
// (ECDSA P-256, SHA-256). Checked against @peculiar/x509 and `openssl verify -x509_strict` by
// the tests.
import { hash, sign, type KeyObject } from 'node:crypto';
import { children, expectTag, readTlv } from '../../registry/der-reader.js';
import { explicit, extension, extensionOf, integerFromHex, oid, sequence, sequenceOf, time, tlv, tlvOf } from './der.js';
import { DEVICE_URI_PREFIX } from './profiles.js';

const ECDSA_WITH_SHA256 = sequence(oid('1.2.840.10045.4.3.2'));
const VERSION_3 = explicit(0, tlv(0x02, Buffer.from([2])));
const COMMON_NAME = oid('2.5.4.3');
const CLIENT_AUTH = oid('1.3.6.1.5.5.7.3.2');

// RFC 5280 §4.2.1.9: cA FALSE is the DEFAULT and so absent in DER: an empty SEQUENCE.
const BASIC_CONSTRAINTS_END_ENTITY = extension('2.5.29.19', sequence(), true);
// §4.2.1.3: digitalSignature only (bit 0): one byte 0x80 with 7 unused bits.
const KEY_USAGE_DIGITAL_SIGNATURE = extension('2.5.29.15', tlv(0x03, Buffer.from([7, 0x80])), true);
const EXTENDED_KEY_USAGE_CLIENT = extension('2.5.29.37', sequence(CLIENT_AUTH));
const authorityKeyIdentifier = extensionOf('2.5.29.35');
const subjectAltName = extensionOf('2.5.29.17');
const crlDistributionPoints = extensionOf('2.5.29.31');

// §4.2.1.2: the SKI is a SHA-1 (20 bytes), so its extension is a fixed header and the digest:
// SEQUENCE { extnID, OCTET STRING { OCTET STRING (20 bytes) } }.
const SKI_LENGTH = 20;
const SUBJECT_KEY_IDENTIFIER_HEAD = extensionOf('2.5.29.14')(tlv(0x04, Buffer.alloc(SKI_LENGTH))).subarray(0, -SKI_LENGTH);

/** §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's value. */
export function subjectKeyId(spki: Buffer): Buffer {
  const [, key] = children(spki, expectTag(readTlv(spki, 0), 0x30, 'SubjectPublicKeyInfo'));
  const bits = expectTag(key, 0x03, 'subjectPublicKey');
  return hash('sha1', spki.subarray(bits.start + 1, bits.end), 'buffer');
}

export interface DeviceCertificateParams {
  serial: string;
  deviceId: string;
  spki: Buffer;
  notBefore: Date;
  notAfter: Date;
  crlUrl: string;
}

export interface IssuerTemplate {
  /** The issuer's Name, DER, exactly as its certificate's subject. */
  name: Buffer;
  /** The issuer's subject key identifier. */
  keyId: Buffer;
  key: KeyObject;
}

/** CRL locations an issuer keeps encoded: one or two in practice (its URL, before and after a port is known). */
const MAX_CRL_URLS = 8;

/** Writes and signs the device certificates of one issuer. */
export class DeviceCertificateWriter {
  /** signature AlgorithmIdentifier and issuer Name: what follows the serial in every TBSCertificate. */
  readonly #algorithmAndIssuer: Buffer;
  /** basicConstraints, keyUsage, extKeyUsage: the first extensions, the same in every certificate. */
  readonly #fixedExtensions: Buffer;
  readonly #authorityKeyIdentifier: Buffer;
  readonly #crlDistributionPoints = new Map<string, Buffer>();

  constructor(private readonly issuer: IssuerTemplate) {
    this.#algorithmAndIssuer = Buffer.concat([ECDSA_WITH_SHA256, issuer.name]);
    this.#fixedExtensions = Buffer.concat([BASIC_CONSTRAINTS_END_ENTITY, KEY_USAGE_DIGITAL_SIGNATURE, EXTENDED_KEY_USAGE_CLIENT]);
    // keyIdentifier [0] IMPLICIT
    this.#authorityKeyIdentifier = authorityKeyIdentifier(sequence(tlv(0x80, issuer.keyId)));
  }

  /** The signed certificate, DER. */
  write(p: DeviceCertificateParams): Buffer {
    const tbs = sequenceOf([
      VERSION_3,
      integerFromHex(p.serial),
      this.#algorithmAndIssuer,
      sequence(time(p.notBefore), time(p.notAfter)),
      sequence(tlv(0x31, sequence(COMMON_NAME, tlv(0x0c, Buffer.from(p.deviceId, 'utf8'))))),
      p.spki,
      explicit(
        3,
        sequenceOf([
          this.#fixedExtensions,
          SUBJECT_KEY_IDENTIFIER_HEAD,
          subjectKeyId(p.spki),
          this.#authorityKeyIdentifier,
          // uniformResourceIdentifier [6] IMPLICIT IA5String
          subjectAltName(sequence(tlv(0x86, Buffer.from(`${DEVICE_URI_PREFIX}${p.deviceId}`, 'ascii')))),
          this.#crlDistributionPointsOf(p.crlUrl),
        ]),
      ),
    ]);
    const signature = sign('sha256', tbs, { key: this.issuer.key, dsaEncoding: 'der' });
    // signatureValue BIT STRING: no unused bits.
    return sequenceOf([tbs, ECDSA_WITH_SHA256, tlvOf(0x03, [NO_UNUSED_BITS, signature])]);
  }

  #crlDistributionPointsOf(url: string): Buffer {
    let encoded = this.#crlDistributionPoints.get(url);
    if (!encoded) {
      // DistributionPoint { distributionPoint [0] { fullName [0] { URI } } }
      encoded = crlDistributionPoints(sequence(sequence(tlv(0xa0, tlv(0xa0, tlv(0x86, Buffer.from(url, 'ascii')))))));
      if (this.#crlDistributionPoints.size >= MAX_CRL_URLS) this.#crlDistributionPoints.clear();
      this.#crlDistributionPoints.set(url, encoded);
    }
    return encoded;
  }
}

const NO_UNUSED_BITS = Buffer.from([0]);

/** One certificate with a writer made for it; a CA signing many keeps its DeviceCertificateWriter. */
export function deviceCertificateDer(issuer: IssuerTemplate, p: DeviceCertificateParams): Buffer {
  return new DeviceCertificateWriter(issuer).write(p);
}
