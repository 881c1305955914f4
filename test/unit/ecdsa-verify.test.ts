// The native ECDSA verifier must give node:crypto's verdict on every input: the same table of
// keys and signatures, good and bad, runs through both.
import assert from 'node:assert/strict';
import { createECDH, createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { ecdsa, FIELD_BYTES, nativeEcdsa, nodeCryptoEcdsa, type EcCurve, type EcdsaVerdict, type EcdsaVerifier } from '../../provisioning/pki/ecdsa-verify.js';

// Field prime, curve coefficient b and group order (SEC 2 / FIPS 186-4); a = -3 on both.
const CURVES: Record<EcCurve, { p: bigint; b: bigint; n: bigint; hash: string }> = {
  'P-256': {
    p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
    b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
    n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    hash: 'sha256',
  },
  'P-384': {
    p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
    b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
    n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    hash: 'sha384',
  },
};

const modPow = (base: bigint, exponent: bigint, modulus: bigint) => {
  let result = 1n;
  for (base %= modulus; exponent > 0n; exponent >>= 1n, base = (base * base) % modulus) if (exponent & 1n) result = (result * base) % modulus;
  return result;
};
const bytes = (value: bigint, length: number) => Buffer.from(value.toString(16).padStart(length * 2, '0'), 'hex');
const integer = (value: Buffer) => BigInt(`0x${value.toString('hex') || '0'}`);

/** A point on the curve with a small x, so that x + p still fits the field's width. */
function smallPoint(curve: EcCurve): { x: bigint; y: bigint } {
  const { p, b } = CURVES[curve];
  for (let x = 1n; ; x++) {
    const rhs = (((x * x * x - 3n * x + b) % p) + p) % p;
    const y = modPow(rhs, (p + 1n) / 4n, p); // p ≡ 3 (mod 4) on both curves
    if ((y * y) % p === rhs) return { x, y };
  }
}

const uncompressed = (curve: EcCurve, x: bigint, y: bigint) => Buffer.concat([Buffer.from([4]), bytes(x, FIELD_BYTES[curve]), bytes(y, FIELD_BYTES[curve])]);

/** DER INTEGER content of a non-negative value: minimal, with a 0x00 when the top bit is set. */
const derInteger = (value: bigint) => {
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  const raw = Buffer.from(hex, 'hex');
  return raw[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), raw]) : raw;
};
const tlv = (tag: number, content: Buffer) => Buffer.concat([Buffer.from([tag, content.length]), content]);
const signatureDer = (r: bigint, s: bigint) => tlv(0x30, Buffer.concat([tlv(0x02, derInteger(r)), tlv(0x02, derInteger(s))]));
function rAndS(der: Buffer): { r: bigint; s: bigint } {
  const rLength = der[3]!;
  const r = der.subarray(4, 4 + rLength);
  const s = der.subarray(6 + rLength, 6 + rLength + der[5 + rLength]!);
  return { r: integer(r), s: integer(s) };
}

interface Case {
  name: string;
  point: Buffer;
  hash: string;
  data: Buffer;
  signature: Buffer;
  verdict: EcdsaVerdict;
}

/**
 * A new key pair: its uncompressed point, and its private key for signing. Made with ECDH,
 * which hands out the point itself: exporting a key made by generateKeyPairSync as a JWK can
 * deadlock Node.js 20 (ExportJWKEcKey holds the key's mutex while it allocates; a garbage
 * collection then may destroy the finished KeyGenJob, which takes the same mutex).
 */
function freshKey(curve: EcCurve): { point: Buffer; privateKey: KeyObject } {
  const size = FIELD_BYTES[curve];
  const ecdh = createECDH(curve === 'P-256' ? 'prime256v1' : 'secp384r1');
  const point = ecdh.generateKeys();
  const secret = ecdh.getPrivateKey();
  const d = Buffer.concat([Buffer.alloc(size - secret.length), secret]);
  const coordinate = (from: number) => point.subarray(from, from + size).toString('base64url');
  const privateKey = createPrivateKey({ key: { kty: 'EC', crv: curve, d: d.toString('base64url'), x: coordinate(1), y: coordinate(1 + size) }, format: 'jwk' });
  return { point, privateKey };
}

function casesFor(curve: EcCurve): Case[] {
  const { p, n, hash } = CURVES[curve];
  const { privateKey, point } = freshKey(curve);
  const other = freshKey(curve);
  const data = Buffer.from(`certificationRequestInfo on ${curve}`);
  const signed = (h: string, by = privateKey) => sign(h, data, { key: by, dsaEncoding: 'der' });
  const good = signed(hash);
  const { r, s } = rAndS(good);
  const size = FIELD_BYTES[curve];
  const x = point.subarray(1, 1 + size);
  const y = point.subarray(1 + size);
  const small = smallPoint(curve);
  const withGood = (name: string, key: Buffer, verdict: EcdsaVerdict): Case => ({ name, point: key, hash, data, signature: good, verdict });
  const withKey = (name: string, signature: Buffer, verdict: EcdsaVerdict): Case => ({ name, point, hash, data, signature, verdict });
  const flippedY = Buffer.from(point);
  flippedY[flippedY.length - 1]! ^= 1;
  return [
    withKey('a good signature', good, 'verified'),
    { name: 'a good signature over SHA-512', point, hash: 'sha512', data, signature: signed('sha512'), verdict: 'verified' },
    withKey('the same signature with s replaced by n − s', signatureDer(r, n - s), 'verified'),
    { name: 'other data', point, hash, data: Buffer.from('something else'), signature: good, verdict: 'signature_invalid' },
    withKey("another key's signature", signed(hash, other.privateKey), 'signature_invalid'),
    { name: 'another hash than the one signed', point, hash: 'sha512', data, signature: good, verdict: 'signature_invalid' },
    withKey('r with a needless leading zero', tlv(0x30, Buffer.concat([tlv(0x02, Buffer.concat([Buffer.from([0]), derInteger(r)])), tlv(0x02, derInteger(s))])), 'signature_invalid'),
    withKey('a long-form length', Buffer.concat([Buffer.from([0x30, 0x81, good[1]!]), good.subarray(2)]), 'signature_invalid'),
    withKey('a byte after the signature', Buffer.concat([good, Buffer.from([0])]), 'signature_invalid'),
    withKey('r = 0', signatureDer(0n, s), 'signature_invalid'),
    withKey('s = n', signatureDer(r, n), 'signature_invalid'),
    withKey('s = n + s', signatureDer(r, n + s), 'signature_invalid'),
    withKey('no signature at all', Buffer.alloc(0), 'signature_invalid'),
    withKey('a signature that is not DER', Buffer.from('not a signature'), 'signature_invalid'),
    withGood('a point off the curve', flippedY, 'key_invalid'),
    withGood('a compressed point', Buffer.concat([Buffer.from([2 + (y[y.length - 1]! & 1)]), x]), 'key_invalid'),
    withGood('a hybrid point', Buffer.concat([Buffer.from([6 + (y[y.length - 1]! & 1)]), x, y]), 'key_invalid'),
    withGood('x and y of zero', uncompressed(curve, 0n, 0n), 'key_invalid'),
    withGood('the point at infinity', Buffer.from([0]), 'key_invalid'),
    withGood('a point one byte short', point.subarray(0, point.length - 1), 'key_invalid'),
    withGood('a point on the curve, another key', uncompressed(curve, small.x, small.y), 'signature_invalid'),
    withGood('the same point with x + p', uncompressed(curve, small.x + p, small.y), 'key_invalid'),
  ];
}

const verifiers: EcdsaVerifier[] = [nodeCryptoEcdsa, ...(nativeEcdsa ? [nativeEcdsa] : [])];

describe('ECDSA verification of a raw public point', () => {
  it('uses the native verifier, built by npm ci', () => {
    assert.ok(nativeEcdsa, 'build/Release/ecdsa_verify.node did not load');
    assert.equal(ecdsa.kind, 'native');
  });

  for (const curve of ['P-256', 'P-384'] as const) {
    const cases = casesFor(curve);
    for (const verifier of verifiers) {
      it(`${verifier.kind} gives the expected verdict on ${cases.length} ${curve} cases`, () => {
        for (const c of cases) assert.equal(verifier.verify(curve, c.point, c.hash, c.data, c.signature), c.verdict, c.name);
      });
    }
  }

  it('refuses a P-256 point offered as P-384, and the other way round', () => {
    const p256 = casesFor('P-256')[0]!;
    const p384 = casesFor('P-384')[0]!;
    for (const verifier of verifiers) {
      assert.equal(verifier.verify('P-384', p256.point, p256.hash, p256.data, p256.signature), 'key_invalid', verifier.kind);
      assert.equal(verifier.verify('P-256', p384.point, p384.hash, p384.data, p384.signature), 'key_invalid', verifier.kind);
    }
  });

  it('agrees with node:crypto on 200 fresh keys, signatures good and bad', () => {
    for (let i = 0; i < 200; i++) {
      const curve: EcCurve = i % 2 ? 'P-256' : 'P-384';
      const { privateKey, point } = freshKey(curve);
      const data = Buffer.from(`request ${i}`);
      const signature = sign(CURVES[curve].hash, data, { key: privateKey, dsaEncoding: 'der' });
      const tampered = Buffer.from(data);
      tampered[0]! ^= 1;
      for (const [input, verdict] of [[data, 'verified'], [tampered, 'signature_invalid']] as const) {
        for (const verifier of verifiers) assert.equal(verifier.verify(curve, point, CURVES[curve].hash, input, signature), verdict, `${verifier.kind}, key ${i}`);
      }
    }
  });

  it('finds the small test points on the curve (the table above depends on it)', () => {
    for (const curve of ['P-256', 'P-384'] as const) {
      const { x, y } = smallPoint(curve);
      const size = FIELD_BYTES[curve];
      assert.doesNotThrow(() => createPublicKey({ key: { kty: 'EC', crv: curve, x: bytes(x, size).toString('base64url'), y: bytes(y, size).toString('base64url') }, format: 'jwk' }));
    }
  });
});
