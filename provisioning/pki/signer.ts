// The only holder of a CA's private key. Everything that needs a signature asks a CaSigner;
// the key never leaves it (it is imported non-extractable) and is never logged.
import { createHash, hash, KeyObject } from 'node:crypto';
import type { Fingerprint, SerialHex } from '../../registry/ids.js';
import { signCrlDer, type CrlEntryDer } from './crl-der.js';
import { EC_P256_SHA256 } from './keys.js';
import { DeviceCertificateWriter } from './device-certificate.js';
import { toPem } from './pem.js';
import { claimExtensions, issuingCaExtensions, serverExtensions, stationExtensions } from './profiles.js';
import { randomSerial } from './serial.js';
import { x509, type CryptoKey } from './x509.js';

/** A device certificate, written as DER by this service. */
export interface DeviceCertificate {
  serial: SerialHex;
  fingerprint: Fingerprint;
  pem: string;
  der: Buffer;
  notBefore: Date;
  notAfter: Date;
}

export interface IssuedCertificate {
  serial: SerialHex;
  fingerprint: Fingerprint;
  pem: string;
  notBefore: Date;
  notAfter: Date;
  certificate: x509.X509Certificate;
}

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

export async function keyIdOf(key: x509.PublicKey | x509.X509Certificate): Promise<string> {
  const publicKey = key instanceof x509.X509Certificate ? key.publicKey : key;
  return Buffer.from(await publicKey.getKeyIdentifier()).toString('hex');
}

export function describeCertificate(certificate: x509.X509Certificate): Pick<IssuedCertificate, 'serial' | 'fingerprint' | 'pem' | 'notBefore' | 'notAfter'> {
  return {
    serial: certificate.serialNumber.toLowerCase() as SerialHex,
    fingerprint: createHash('sha256').update(Buffer.from(certificate.rawData)).digest('hex') as Fingerprint,
    pem: certificate.toString('pem'),
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
  };
}

export class CaSigner {
  /** The same key for node:crypto, which signs what this service writes as DER itself. */
  readonly #keyObject: KeyObject;
  readonly #devices: DeviceCertificateWriter;

  private constructor(
    readonly certificate: x509.X509Certificate,
    readonly keyId: string,
    private readonly key: CryptoKey,
  ) {
    this.#keyObject = KeyObject.from(key);
    this.#devices = new DeviceCertificateWriter({ name: Buffer.from(certificate.subjectName.toArrayBuffer()), keyId: Buffer.from(keyId, 'hex'), key: this.#keyObject });
  }

  static async create(certificate: x509.X509Certificate, key: CryptoKey): Promise<CaSigner> {
    return new CaSigner(certificate, await keyIdOf(certificate), key);
  }

  get pem(): string {
    return this.certificate.toString('pem');
  }

  /** A device certificate for the key in `spki` (DER), CN = device id. */
  issueDevice(deviceId: string, spki: Buffer, validity: Validity, crlUrl: string): DeviceCertificate {
    // Certificates hold whole seconds; record exactly what the certificate says.
    const notBefore = new Date(Math.floor(validity.notBefore.getTime() / 1000) * 1000);
    const notAfter = new Date(Math.floor(validity.notAfter.getTime() / 1000) * 1000);
    const serial = randomSerial();
    const der = this.#devices.write({ serial, deviceId, spki, notBefore, notAfter, crlUrl });
    return {
      serial,
      fingerprint: hash('sha256', der, 'hex') as Fingerprint,
      pem: toPem('CERTIFICATE', der),
      der,
      notBefore,
      notAfter,
    };
  }

  async issueServer(commonName: string, names: { dns: string[]; ips: string[] }, publicKey: x509.PublicKey, validity: Validity): Promise<IssuedCertificate> {
    const ids = { subject: await keyIdOf(publicKey), authority: this.keyId };
    return this.#sign([{ CN: [commonName] }], publicKey, validity, serverExtensions(ids, names.dns, names.ips));
  }

  /** The claim certificate of a claim batch (see claimExtensions). */
  async issueClaim(batchId: string, publicKey: x509.PublicKey, validity: Validity, crlUrl: string): Promise<IssuedCertificate> {
    const ids = { subject: await keyIdOf(publicKey), authority: this.keyId };
    return this.#sign([{ CN: [`Fleet claim ${batchId}`] }, { O: ['Fleet Identity'] }], publicKey, validity, claimExtensions(ids, batchId, crlUrl));
  }

  /** A factory station's client certificate; its CN is no device id (it has a space). */
  async issueStation(name: string, publicKey: x509.PublicKey, validity: Validity, crlUrl: string): Promise<IssuedCertificate> {
    const ids = { subject: await keyIdOf(publicKey), authority: this.keyId };
    return this.#sign([{ CN: [`Fleet station ${name}`] }, { O: ['Fleet Identity'] }], publicKey, validity, stationExtensions(ids, name, crlUrl));
  }

  async issueIssuingCa(subject: x509.JsonName, publicKey: x509.PublicKey, validity: Validity, options: { pathLength?: number; crlUrl?: string } = {}): Promise<IssuedCertificate> {
    const ids = { subject: await keyIdOf(publicKey), authority: this.keyId };
    return this.#sign(subject, publicKey, validity, issuingCaExtensions(ids, options.pathLength, options.crlUrl));
  }

  /** The pathLenConstraint of this CA's basicConstraints: how many CAs may follow below it. */
  get pathLength(): number | undefined {
    return this.certificate.getExtension(x509.BasicConstraintsExtension)?.pathLength;
  }

  /** Whether this CA may sign another CA (RFC 5280 §4.2.1.9). */
  get maySignCas(): boolean {
    return this.pathLength === undefined || this.pathLength > 0;
  }

  /** Signs a CRL over the given entries; the caller owns the entry list and the numbering. */
  signCrl(entries: readonly CrlEntryDer[], params: { thisUpdate: Date; nextUpdate: Date; crlNumber: bigint }): Buffer {
    return signCrlDer({
      issuerName: Buffer.from(this.certificate.subjectName.toArrayBuffer()),
      authorityKeyId: this.keyId,
      ...params,
      entries,
      key: this.#keyObject,
    });
  }

  async #sign(subject: x509.JsonName, publicKey: x509.PublicKey, validity: Validity, extensions: x509.Extension[]): Promise<IssuedCertificate> {
    const certificate = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject,
      issuer: this.certificate.subjectName,
      notBefore: validity.notBefore,
      notAfter: validity.notAfter,
      publicKey,
      signingKey: this.key,
      signingAlgorithm: EC_P256_SHA256,
      extensions,
    });
    return { ...describeCertificate(certificate), certificate };
  }
}
