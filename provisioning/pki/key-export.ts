// A private key handed over once, encrypted with the caller's passphrase: PKCS#8
// (EncryptedPrivateKeyInfo, PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC, RFC 8018) or
// PKCS#12 (RFC 7292) holding the key the same way, the certificate and its chain. The ASN.1
// structures come from @peculiar/asn1-pfx; every cryptographic step is node:crypto's.
import { createHash, createHmac, randomBytes, type KeyObject } from 'node:crypto';
import { ContentInfo, id_data } from '@peculiar/asn1-cms';
import { AuthenticatedSafe, CertBag, id_certBag, id_pkcs8ShroudedKeyBag, id_pkcs_9, id_x509Certificate, MacData, PFX, PKCS12Attribute, SafeBag, SafeContents } from '@peculiar/asn1-pfx';
import { DigestInfo } from '@peculiar/asn1-rsa';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { tlv } from './der.js';

/** OpenSSL's default iteration count for both the key's PBKDF2 and the PKCS#12 MAC. */
export const ITERATIONS = 2048;
const SHA256 = '2.16.840.1.101.3.4.2.1';
const FRIENDLY_NAME = `${id_pkcs_9}.20`;
const LOCAL_KEY_ID = `${id_pkcs_9}.21`;
const DER_NULL = new Uint8Array([0x05, 0x00]).buffer;

const arrayBuffer = (b: Buffer): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

/** PKCS#8 EncryptedPrivateKeyInfo, PEM (`BEGIN ENCRYPTED PRIVATE KEY`). */
export function encryptedPkcs8Pem(key: KeyObject, passphrase: string): string {
  return key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }).toString();
}

function encryptedPkcs8Der(key: KeyObject, passphrase: string): Buffer {
  return key.export({ type: 'pkcs8', format: 'der', cipher: 'aes-256-cbc', passphrase });
}

/**
 * RFC 7292 Appendix B.2: the PKCS#12 key derivation, here for the MAC key (ID 3) with
 * SHA-256 (u = 32, v = 64). The password is a BMPString with its two-byte terminator.
 */
export function pkcs12Kdf(password: string, salt: Buffer, iterations: number, id: number, length: number): Buffer {
  const u = 32;
  const v = 64;
  const pass = Buffer.concat([Buffer.from(password, 'utf16le').swap16(), Buffer.alloc(2)]);
  const fill = (data: Buffer) => {
    if (data.length === 0) return Buffer.alloc(0);
    const out = Buffer.alloc(v * Math.ceil(data.length / v));
    for (let i = 0; i < out.length; i++) out[i] = data[i % data.length]!;
    return out;
  };
  const D = Buffer.alloc(v, id);
  const I = Buffer.concat([fill(salt), fill(pass)]);
  const blocks: Buffer[] = [];
  for (let produced = 0; produced < length; produced += u) {
    let A = createHash('sha256').update(D).update(I).digest();
    for (let r = 1; r < iterations; r++) A = createHash('sha256').update(A).digest();
    blocks.push(A);
    // I_j = (I_j + B + 1) mod 2^(8v), for every v-byte block I_j of I, B being A repeated.
    const B = fill(A.subarray(0, Math.min(A.length, v)));
    for (let j = 0; j < I.length; j += v) {
      let carry = 1;
      for (let k = v - 1; k >= 0; k--) {
        const sum = I[j + k]! + B[k]! + carry;
        I[j + k] = sum & 0xff;
        carry = sum >> 8;
      }
    }
  }
  return Buffer.concat(blocks).subarray(0, length);
}

function attribute(id: string, valueDer: ArrayBuffer): PKCS12Attribute {
  // The library's constructor drops its parameters: set the fields afterwards.
  const a = new PKCS12Attribute();
  a.attrId = id;
  a.attrValues = [valueDer];
  return a;
}

/** A SafeContents in a plain `data` ContentInfo: its integrity comes from the MAC over the whole. */
function dataContent(bags: SafeBag[]): ContentInfo {
  return new ContentInfo({ contentType: id_data, content: AsnConvert.serialize(new OctetString(AsnConvert.serialize(new SafeContents(bags)))) });
}

/**
 * A PKCS#12 file: the key in a PKCS8ShroudedKeyBag (PBES2, AES-256-CBC), the certificate and
 * the chain above it in CertBags, the key and its certificate tied by localKeyId, all under
 * an HMAC-SHA256 MAC keyed from the passphrase (RFC 7292 §5). What OpenSSL 3 writes by default.
 */
export function pkcs12(key: KeyObject, certificateDer: Buffer, chainDers: readonly Buffer[], passphrase: string, friendlyName: string): Buffer {
  const localKeyId = AsnConvert.serialize(new OctetString(arrayBuffer(createHash('sha1').update(certificateDer).digest())));
  const name = arrayBuffer(tlv(0x1e, Buffer.from(friendlyName, 'utf16le').swap16())); // BMPString
  const certBag = (der: Buffer, attributes: PKCS12Attribute[]) =>
    new SafeBag({
      bagId: id_certBag,
      bagValue: AsnConvert.serialize(new CertBag({ certId: id_x509Certificate, certValue: AsnConvert.serialize(new OctetString(arrayBuffer(der))) })),
      ...(attributes.length > 0 ? { bagAttributes: attributes } : {}),
    });
  const keyBag = new SafeBag({
    bagId: id_pkcs8ShroudedKeyBag,
    bagValue: arrayBuffer(encryptedPkcs8Der(key, passphrase)),
    bagAttributes: [attribute(LOCAL_KEY_ID, localKeyId), attribute(FRIENDLY_NAME, name)],
  });
  const certificates = [certBag(certificateDer, [attribute(LOCAL_KEY_ID, localKeyId), attribute(FRIENDLY_NAME, name)]), ...chainDers.map((der) => certBag(der, []))];
  const authSafe = Buffer.from(AsnConvert.serialize(new AuthenticatedSafe([dataContent(certificates), dataContent([keyBag])])));

  const salt = randomBytes(16);
  const mac = createHmac('sha256', pkcs12Kdf(passphrase, salt, ITERATIONS, 3, 32)).update(authSafe).digest();
  const pfx = new PFX({
    version: 3,
    authSafe: new ContentInfo({ contentType: id_data, content: AsnConvert.serialize(new OctetString(arrayBuffer(authSafe))) }),
    macData: new MacData({
      mac: new DigestInfo({ digestAlgorithm: new AlgorithmIdentifier({ algorithm: SHA256, parameters: DER_NULL }), digest: new OctetString(arrayBuffer(mac)) }),
      macSalt: new OctetString(arrayBuffer(salt)),
      iterations: ITERATIONS,
    }),
  });
  return Buffer.from(AsnConvert.serialize(pfx));
}
