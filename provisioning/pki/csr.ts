// Checks a PKCS#10 request before anything is signed. Only the public key is taken from it:
// the subject and any requested extensions are ignored, since identity comes from the
// registry, never from the request. The request is read with a strict DER reader and its
// signature verified directly (ecdsa-verify.ts for EC keys, node:crypto for RSA): a general
// ASN.1 library costs more than the rest of issuance together.
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { catalogueError } from '../../registry/errors.js';
import { children, DerError, expectTag, readTlv } from '../../registry/der-reader.js';
import { ecdsa, FIELD_BYTES, type EcCurve } from './ecdsa-verify.js';

export const CSR_ERRORS = {
  csr_malformed: 'not one PEM-encoded PKCS#10 certificate request',
  csr_key_unsupported: 'key must be EC P-256, EC P-384, or RSA of 2048 to 8192 bits',
  csr_signature_invalid: 'the request is not signed by its own key with SHA-256 or stronger',
} as const;

export class CsrError extends catalogueError('CsrError', CSR_ERRORS) {}

export interface CheckedCsr {
  /** The SubjectPublicKeyInfo, DER, exactly as requested. */
  spki: Buffer;
  /** SHA-256 of the SubjectPublicKeyInfo, lowercase hex. */
  publicKeySha256: string;
  /** e.g. "EC P-256", "RSA 3072". */
  keyDescription: string;
}

const PEM_BLOCK = /-----BEGIN (NEW )?CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]+)-----END (NEW )?CERTIFICATE REQUEST-----/g;

// Signature algorithm OIDs (DER contents, hex) → the key type they need and the hash.
const SIGNATURE_ALGORITHMS: Record<string, { keyType: 'ec' | 'rsa'; hash: string }> = {
  '2a8648ce3d040302': { keyType: 'ec', hash: 'sha256' }, // ecdsa-with-SHA256
  '2a8648ce3d040303': { keyType: 'ec', hash: 'sha384' },
  '2a8648ce3d040304': { keyType: 'ec', hash: 'sha512' },
  '2a864886f70d01010b': { keyType: 'rsa', hash: 'sha256' }, // sha256WithRSAEncryption
  '2a864886f70d01010c': { keyType: 'rsa', hash: 'sha384' },
  '2a864886f70d01010d': { keyType: 'rsa', hash: 'sha512' },
};
const WEAK_ALGORITHMS: Record<string, string> = { '2a864886f70d010105': 'SHA-1', '2a8648ce3d0401': 'SHA-1', '2a864886f70d010104': 'MD5' };

interface RawRequest {
  info: Buffer;
  spki: Buffer;
  algorithm: string;
  signature: Buffer;
}

/** CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature BIT STRING } (RFC 2986 §4). */
function parseRequest(der: Buffer): RawRequest {
  const outer = expectTag(readTlv(der, 0), 0x30, 'a SEQUENCE');
  if (outer.end !== der.length) throw new DerError('bytes after the request');
  const [info, algorithm, signature, extra] = children(der, outer);
  if (extra) throw new DerError('more than three fields');
  const [version, subject, spki] = children(der, expectTag(info, 0x30, 'certificationRequestInfo'));
  if (expectTag(version, 0x02, 'a version').end - version!.start !== 1 || der[version!.start] !== 0) throw new DerError('version is not v1');
  expectTag(subject, 0x30, 'a subject');
  expectTag(spki, 0x30, 'subjectPKInfo');
  const [oid] = children(der, expectTag(algorithm, 0x30, 'signatureAlgorithm'));
  const bits = expectTag(signature, 0x03, 'a BIT STRING signature');
  if (der[bits.start] !== 0) throw new DerError('signature with unused bits');
  return {
    info: der.subarray(info!.offset, info!.end),
    spki: der.subarray(spki!.offset, spki!.end),
    algorithm: der.subarray(expectTag(oid, 0x06, 'an algorithm OID').start, oid!.end).toString('hex'),
    signature: der.subarray(bits.start + 1, bits.end),
  };
}

export function checkCsr(pem: string): CheckedCsr {
  const blocks = [...pem.matchAll(PEM_BLOCK)];
  if (blocks.length !== 1) throw new CsrError('csr_malformed', `found ${blocks.length} request blocks`);
  let request: RawRequest;
  try {
    // Node's base64 decoder skips the line breaks.
    request = parseRequest(Buffer.from(blocks[0]![2]!, 'base64'));
  } catch (cause) {
    throw new CsrError('csr_malformed', cause instanceof DerError ? cause.message : 'DER does not parse', { cause });
  }

  let key: PublicKey;
  try {
    key = publicKeyOf(request.spki);
  } catch (cause) {
    if (cause instanceof CsrError) throw cause;
    throw new CsrError('csr_key_unsupported', 'unknown key algorithm', { cause });
  }

  const weak = WEAK_ALGORITHMS[request.algorithm];
  if (weak) throw new CsrError('csr_signature_invalid', `signed with ${weak}`);
  const algorithm = SIGNATURE_ALGORITHMS[request.algorithm];
  if (!algorithm || algorithm.keyType !== key.type) throw new CsrError('csr_signature_invalid', 'signature algorithm not usable with this key');
  checkSignature(key, algorithm.hash, request);

  return { spki: Buffer.from(request.spki), publicKeySha256: createHash('sha256').update(request.spki).digest('hex'), keyDescription: key.description };
}

/** An EC key as its raw point, checked when the signature is; an RSA key as a KeyObject. */
type PublicKey = { type: 'ec'; curve: EcCurve; point: Buffer; description: string } | { type: 'rsa'; key: KeyObject; description: string };

function checkSignature(key: PublicKey, hash: string, request: RawRequest): void {
  if (key.type === 'ec') {
    const verdict = ecdsa.verify(key.curve, key.point, hash, request.info, request.signature);
    if (verdict === 'key_invalid') throw new CsrError('csr_key_unsupported', `not a point on ${key.curve}`);
    if (verdict !== 'verified') throw new CsrError('csr_signature_invalid');
    return;
  }
  let verified: boolean;
  try {
    verified = verify(hash, request.info, key.key, request.signature);
  } catch {
    verified = false; // a signature that does not even decode
  }
  if (!verified) throw new CsrError('csr_signature_invalid');
}

// The algorithm of a SubjectPublicKeyInfo (DER contents of its OID) and, for EC, the curve.
const EC_PUBLIC_KEY = '2a8648ce3d0201';
const RSA_ENCRYPTION = '2a864886f70d010101';
const EC_CURVES: Record<string, EcCurve> = { '2a8648ce3d030107': 'P-256', '2b81040022': 'P-384' };

/**
 * The public key of a SubjectPublicKeyInfo. EC P-256/P-384 keys stay raw points; RSA keys go
 * in as JWK, built from their raw numbers: OpenSSL 3's DER decoder costs more than the
 * signature check itself. Anything else takes the general path (and is then refused by the
 * key policy).
 */
function publicKeyOf(spki: Buffer): PublicKey {
  const outer = expectTag(readTlv(spki, 0), 0x30, 'SubjectPublicKeyInfo');
  const [algorithm, bits] = children(spki, outer);
  const [oid, parameters] = children(spki, expectTag(algorithm, 0x30, 'AlgorithmIdentifier'));
  const keyOid = spki.subarray(expectTag(oid, 0x06, 'an OID').start, oid!.end).toString('hex');
  const key = spki.subarray(expectTag(bits, 0x03, 'subjectPublicKey').start + 1, bits!.end);
  if (keyOid === EC_PUBLIC_KEY && parameters?.tag === 0x06) {
    const curve = EC_CURVES[spki.subarray(parameters.start, parameters.end).toString('hex')];
    // An uncompressed point: 0x04, x, y. Whether it is on the curve is the verifier's to say.
    if (curve && key.length === 1 + 2 * FIELD_BYTES[curve] && key[0] === 4) return { type: 'ec', curve, point: key, description: `EC ${curve}` };
  }
  if (keyOid === RSA_ENCRYPTION) {
    const [n, e] = children(key, expectTag(readTlv(key, 0), 0x30, 'RSAPublicKey'));
    const integer = (t: typeof n) => {
      const bytes = key.subarray(expectTag(t, 0x02, 'an INTEGER').start, t!.end);
      return bytes[0] === 0 ? bytes.subarray(1) : bytes;
    };
    const modulus = integer(n);
    const jwk = { kty: 'RSA', n: modulus.toString('base64url'), e: integer(e).toString('base64url') };
    return { type: 'rsa', key: createPublicKey({ key: jwk, format: 'jwk' }), description: rsaDescription(modulus.length * 8 - Math.clz32(modulus[0] ?? 0) + 24) };
  }
  // Anything else is refused, but named: "curve secp256k1", "ed25519".
  const other = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  const curve = other.asymmetricKeyDetails?.namedCurve;
  throw new CsrError('csr_key_unsupported', curve ? `curve ${curve}` : (other.asymmetricKeyType ?? 'unknown'));
}

function rsaDescription(bits: number): string {
  // Below 2048 is breakable; above 8192 only costs us time to verify.
  if (bits >= 2048 && bits <= 8192) return `RSA ${bits}`;
  throw new CsrError('csr_key_unsupported', `RSA ${bits}`);
}
