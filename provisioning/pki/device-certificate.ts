// Device certificates written directly as DER: their shape never changes, only the serial,
// validity, device id, key and CRL location do. Signed with node:crypto (ECDSA P-256,
// SHA-256). Checked against @peculiar/x509 and `openssl verify -x509_strict` by the tests.
import { createHash, sign, type KeyObject } from 'node:crypto';
import { children, expectTag, readTlv } from './der-reader.js';
import { bitString, explicit, extension, extensionOf, integerFromHex, oid, sequence, time, tlv } from './der.js';
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
const subjectKeyIdentifier = extensionOf('2.5.29.14');
const authorityKeyIdentifier = extensionOf('2.5.29.35');
const subjectAltName = extensionOf('2.5.29.17');
const crlDistributionPoints = extensionOf('2.5.29.31');

/** §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's value. */
export function subjectKeyId(spki: Buffer): Buffer {
  const [, key] = children(spki, expectTag(readTlv(spki, 0), 0x30, 'SubjectPublicKeyInfo'));
  const bits = expectTag(key, 0x03, 'subjectPublicKey');
  return createHash('sha1').update(spki.subarray(bits.start + 1, bits.end)).digest();
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

export function deviceCertificateDer(issuer: IssuerTemplate, p: DeviceCertificateParams): Buffer {
  const tbs = sequence(
    VERSION_3,
    integerFromHex(p.serial),
    ECDSA_WITH_SHA256,
    issuer.name,
    sequence(time(p.notBefore), time(p.notAfter)),
    sequence(tlv(0x31, sequence(COMMON_NAME, tlv(0x0c, Buffer.from(p.deviceId, 'utf8'))))),
    p.spki,
    explicit(
      3,
      sequence(
        BASIC_CONSTRAINTS_END_ENTITY,
        KEY_USAGE_DIGITAL_SIGNATURE,
        EXTENDED_KEY_USAGE_CLIENT,
        subjectKeyIdentifier(tlv(0x04, subjectKeyId(p.spki))),
        // keyIdentifier [0] IMPLICIT
        authorityKeyIdentifier(sequence(tlv(0x80, issuer.keyId))),
        // uniformResourceIdentifier [6] IMPLICIT IA5String
        subjectAltName(sequence(tlv(0x86, Buffer.from(`${DEVICE_URI_PREFIX}${p.deviceId}`, 'ascii')))),
        // DistributionPoint { distributionPoint [0] { fullName [0] { URI } } }
        crlDistributionPoints(sequence(sequence(tlv(0xa0, tlv(0xa0, tlv(0x86, Buffer.from(p.crlUrl, 'ascii'))))))),
      ),
    ),
  );
  return sequence(tbs, ECDSA_WITH_SHA256, bitString(sign('sha256', tbs, { key: issuer.key, dsaEncoding: 'der' })));
}
