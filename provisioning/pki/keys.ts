// Private keys: generated with WebCrypto, kept as PKCS#8 PEM files readable by the owner
// only, imported back as non-extractable keys so no code path can export them again.
import { constants, promises as fs } from 'node:fs';
import { webcrypto, x509, type CryptoKey, type CryptoKeyPair } from './x509.js';

export const EC_P256_SHA256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export function generateKeyPair(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_P256_SHA256, true, ['sign', 'verify']);
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

export function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return webcrypto.subtle.importKey('pkcs8', der, EC_P256_SHA256, false, ['sign']);
}

/**
 * Writes a secret with mode 0600, refusing to replace an existing file: keys and tokens are
 * created once and never overwritten.
 */
export async function writeSecretFile(path: string, content: string): Promise<void> {
  const handle = await fs.open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Reads a secret, refusing one that others can read: a leaked CA key is not a warning. */
export async function readSecretFile(path: string): Promise<string> {
  const info = await fs.stat(path);
  if ((info.mode & 0o077) !== 0) {
    throw new Error(`${path} is readable by group or others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`);
  }
  return fs.readFile(path, 'utf8');
}
