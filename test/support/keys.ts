// Keys and CSRs for tests, made with node:crypto and @peculiar/x509 (not the simulator).
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { x509 } from '../../provisioning/pki/x509.js';

export const P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface TestKey {
  keyPem: string;
  csrPem: string;
  keys: webcrypto.CryptoKeyPair;
}

export async function ecKeyWithCsr(commonName = 'ignored-by-the-service', params: EcKeyGenParams & { hash: string } = P256): Promise<TestKey> {
  const keys = (await webcrypto.subtle.generateKey(params, true, ['sign', 'verify']));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${commonName}`, keys, signingAlgorithm: params });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), csrPem: csr.toString('pem'), keys };
}

export async function rsaKeyWithCsr(bits: number): Promise<TestKey> {
  const params = { name: 'RSASSA-PKCS1-v1_5', modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(params, true, ['sign', 'verify']));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=rsa', keys, signingAlgorithm: params });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), csrPem: csr.toString('pem'), keys };
}

export function ed25519KeyPem(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

interface EcKeyGenParams {
  name: string;
  namedCurve: string;
}
