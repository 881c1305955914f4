// PEM (RFC 7468) as this service reads and writes it.
import { X509Certificate } from 'node:crypto';

/** Base64 in lines of 64 characters, each ending in a newline. */
export function base64Lines(der: Buffer): string {
  // Sliced, not a regular expression over the text: this runs once per certificate issued.
  const text = der.toString('base64');
  let out = '';
  for (let at = 0; at < text.length; at += 64) out += `${text.slice(at, at + 64)}\n`;
  return out || '\n';
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
