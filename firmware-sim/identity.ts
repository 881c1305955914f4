// A virtual device's own key and certificate request. Like firmware, it makes its key
// itself and never sends it anywhere; only the CSR leaves.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface DeviceKey {
  /** PKCS#8 PEM, for the TLS client. */
  keyPem: string;
  /** PKCS#10 PEM, for enrollment. */
  csrPem: string;
}

export async function makeDeviceKey(deviceId: string): Promise<DeviceKey> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: `CN=${deviceId}`, keys, signingAlgorithm: EC_P256 },
    webcrypto,
  );
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), csrPem: csr.toString('pem') };
}
