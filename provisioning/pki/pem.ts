// PEM (RFC 7468) as this service reads and writes it.
import { X509Certificate } from 'node:crypto';

/** Base64 in lines of 64 characters, each ending in a newline. */
export function base64Lines(der: Buffer): string {
  return `${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n`;
}

export function toPem(label: string, der: Buffer): string {
  return `-----BEGIN ${label}-----\n${base64Lines(der)}-----END ${label}-----\n`;
}

/** Every certificate block in a PEM text, in order. */
export function certificatesIn(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** The DER of a certificate in PEM. */
export function derOf(pem: string): Buffer {
  return Buffer.from(new X509Certificate(pem).raw);
}
