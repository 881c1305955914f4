// ECDSA signature checks against a raw public point, as a CSR brings it: every request comes
// with a key never seen before, so the cost of taking a key in counts as much as the check.
// The native verifier (native/ecdsa-verify.c, built by `npm ci`) skips OpenSSL's redundant
// full key check and halves the CPU of a CSR; node:crypto gives the same verdicts and is used
// when the addon is not built.
import { createHash, createPublicKey, verify } from 'node:crypto';
import { loadAddon } from '../../registry/native-addon.js';

export type EcCurve = 'P-256' | 'P-384';

/** `key_invalid`: not a canonical uncompressed point on the curve. */
export type EcdsaVerdict = 'verified' | 'signature_invalid' | 'key_invalid';

export interface EcdsaVerifier {
  readonly kind: 'native' | 'node:crypto';
  /** Checks a DER-encoded ECDSA `signature` over `data`, hashed with `hash` (sha256, sha384, sha512). */
  verify(curve: EcCurve, point: Buffer, hash: string, data: Buffer, signature: Buffer): EcdsaVerdict;
}

export const FIELD_BYTES: Record<EcCurve, number> = { 'P-256': 32, 'P-384': 48 };

export const nodeCryptoEcdsa: EcdsaVerifier = {
  kind: 'node:crypto',
  verify(curve, point, hash, data, signature) {
    const size = FIELD_BYTES[curve];
    if (point.length !== 1 + 2 * size || point[0] !== 0x04) return 'key_invalid';
    const jwk = { kty: 'EC', crv: curve, x: point.subarray(1, 1 + size).toString('base64url'), y: point.subarray(1 + size).toString('base64url') };
    let key;
    try {
      // Refuses a point off the curve, and coordinates not below the field prime.
      key = createPublicKey({ key: jwk, format: 'jwk' });
    } catch {
      return 'key_invalid';
    }
    try {
      return verify(hash, data, { key, dsaEncoding: 'der' }, signature) ? 'verified' : 'signature_invalid';
    } catch {
      return 'signature_invalid'; // a signature that does not even decode
    }
  },
};

interface NativeBinding {
  verify(curve: number, point: Buffer, digest: Buffer, signature: Buffer): number;
}

// The addon's curve numbers and answers (native/ecdsa-verify.c).
const NATIVE_CURVES: Record<EcCurve, number> = { 'P-256': 0, 'P-384': 1 };
const NATIVE_VERDICTS: Record<number, EcdsaVerdict> = { 1: 'verified', 0: 'signature_invalid', [-1]: 'key_invalid' };

function nativeVerifier(binding: NativeBinding): EcdsaVerifier {
  return {
    kind: 'native',
    verify(curve, point, hash, data, signature) {
      const answer = binding.verify(NATIVE_CURVES[curve], point, createHash(hash).update(data).digest(), signature);
      const verdict = NATIVE_VERDICTS[answer];
      if (!verdict) throw new Error(`native ECDSA verifier: out of memory (${answer})`);
      return verdict;
    },
  };
}

const addon = loadAddon<NativeBinding>('ecdsa_verify');

/** The native verifier, when the addon is built and loads. */
export const nativeEcdsa: EcdsaVerifier | undefined = addon.binding && nativeVerifier(addon.binding);
/** Why the native verifier is not in use, for the service's start-up log. */
export const nativeEcdsaUnavailable: string | undefined = addon.unavailable;
/** What CSR checks use. */
export const ecdsa: EcdsaVerifier = nativeEcdsa ?? nodeCryptoEcdsa;
