// Bring your own CA: an operator proves possession of a CA's key by signing a verification
// certificate whose CN is a registration code this service issued. Only then is the CA
// trusted for device certificates.
import { catalogueError } from '../registry/errors.js';
import type { SerialHex } from '../registry/ids.js';
import type { CaRecord, UnknownCertificatePolicy } from '../registry/model.js';
import { keyIdOf } from './pki/signer.js';
import { x509 } from './pki/x509.js';

export const EXTERNAL_CA_ERRORS = {
  ca_certificate_invalid: 'the CA certificate does not parse, is not a CA, has expired, or does not chain to a self-signed root',
  verification_certificate_invalid: 'the verification certificate does not parse or is not signed by the CA',
} as const;

export type ExternalCaErrorCode = keyof typeof EXTERNAL_CA_ERRORS;

export class ExternalCaError extends catalogueError('ExternalCaError', EXTERNAL_CA_ERRORS) {}

export interface ExternalCaInput {
  id: string;
  /** The CA that signs the devices' certificates, then (if it is not self-signed) its chain up to a root. */
  certificatePem: string;
  verificationCertificatePem: string;
  unknownCertificates: UnknownCertificatePolicy;
}

function parseAll(pem: string, code: ExternalCaErrorCode): x509.X509Certificate[] {
  try {
    const certificates = x509.PemConverter.decode(pem).map((der) => new x509.X509Certificate(der));
    if (certificates.length === 0) throw new Error('no certificate');
    return certificates;
  } catch (error) {
    throw new ExternalCaError(code, (error as Error).message);
  }
}

const signedBy = (child: x509.X509Certificate, parent: x509.X509Certificate) => child.verify({ publicKey: parent.publicKey, signatureOnly: true });

/**
 * Checks the CA and its proof of possession; returns the record to register and the code
 * the verification certificate names (the registry consumes it in the same transaction).
 */
export async function verifyExternalCa(input: ExternalCaInput, now: Date): Promise<{ record: CaRecord; code: string }> {
  const chain = parseAll(input.certificatePem, 'ca_certificate_invalid');
  const ca = chain[0]!;
  const constraints = ca.getExtension(x509.BasicConstraintsExtension);
  if (!constraints?.ca) throw new ExternalCaError('ca_certificate_invalid', 'basicConstraints does not say CA');
  const usage = ca.getExtension(x509.KeyUsagesExtension);
  if (usage && !(usage.usages & x509.KeyUsageFlags.keyCertSign)) throw new ExternalCaError('ca_certificate_invalid', 'keyUsage lacks keyCertSign');
  for (const cert of chain) {
    if (cert.notAfter.getTime() < now.getTime()) throw new ExternalCaError('ca_certificate_invalid', `${cert.subject} expired`);
  }
  // TLS needs the chain to end at a self-signed certificate in the trust store.
  for (let i = 0; i < chain.length; i++) {
    const issuer = chain[i + 1] ?? chain[i]!;
    if (!(await signedBy(chain[i]!, issuer))) {
      throw new ExternalCaError('ca_certificate_invalid', i + 1 < chain.length ? `${chain[i]!.subject} is not signed by ${issuer.subject}` : `${chain[i]!.subject} is not self-signed; add its chain up to the root`);
    }
  }

  const [verification] = parseAll(input.verificationCertificatePem, 'verification_certificate_invalid');
  if (!(await signedBy(verification!, ca))) throw new ExternalCaError('verification_certificate_invalid', 'not signed by the CA');
  const code = verification!.subjectName.getField('CN')[0];
  if (!code) throw new ExternalCaError('verification_certificate_invalid', 'no CN');

  return {
    code,
    record: {
      id: input.id,
      name: input.id,
      subject: ca.subject,
      serial: ca.serialNumber.toLowerCase() as SerialHex,
      keyId: await keyIdOf(ca),
      pem: chain.map((c) => c.toString('pem')).join('\n') + '\n',
      notBefore: ca.notBefore,
      notAfter: ca.notAfter,
      status: 'ACTIVE',
      external: true,
      unknownCertificates: input.unknownCertificates,
      createdAt: now,
    },
  };
}
