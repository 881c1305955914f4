// Just enough DER (X.690) to write the structures this service signs where their shape is
// fixed: lengths, tags, INTEGERs, OIDs, times. Linear in what it writes.

export function length(n: number): Buffer {
  return header(undefined, n);
}

/** Tag (if any) and length octets in one small buffer. */
function header(tag: number | undefined, n: number): Buffer {
  const tagBytes = tag === undefined ? 0 : 1;
  // Short form below 128; else 0x80 | the count of big-endian length bytes that follow.
  let lengthBytes = 0;
  if (n >= 0x80) for (let v = n; v > 0; v = Math.floor(v / 256)) lengthBytes++;
  const out = Buffer.allocUnsafe(tagBytes + 1 + lengthBytes);
  if (tag !== undefined) out[0] = tag;
  if (lengthBytes === 0) {
    out[tagBytes] = n;
    return out;
  }
  out[tagBytes] = 0x80 | lengthBytes;
  for (let i = lengthBytes, v = n; i > 0; i--, v = Math.floor(v / 256)) out[tagBytes + i] = v & 0xff;
  return out;
}

export function tlv(tag: number, ...content: Buffer[]): Buffer {
  return tlvOf(tag, content);
}

/** tlv() over a list: for contents of any length (a spread of 100,000 arguments overflows the stack). */
export function tlvOf(tag: number, content: readonly Buffer[]): Buffer {
  let size = 0;
  for (const c of content) size += c.length;
  const head = header(tag, size);
  const out = Buffer.allocUnsafe(head.length + size);
  head.copy(out, 0);
  let at = head.length;
  for (const c of content) at += c.copy(out, at);
  return out;
}

export const sequence = (...content: Buffer[]) => tlv(0x30, ...content);
/** A SEQUENCE (OF) of any number of elements. */
export const sequenceOf = (content: readonly Buffer[]) => tlvOf(0x30, content);
export const octetString = (content: Buffer) => tlv(0x04, content);
export const bitString = (content: Buffer) => tlv(0x03, Buffer.from([0]), content);
/** [n] EXPLICIT */
export const explicit = (n: number, content: Buffer) => tlv(0xa0 | n, content);

/** A non-negative INTEGER from big-endian bytes (a 0x00 is prepended when the top bit is set). */
export function unsignedInteger(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const trimmed = bytes.subarray(start);
  return tlv(0x02, trimmed[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

export const integerFromHex = (hex: string) => unsignedInteger(Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex'));

export function integerFromBigInt(value: bigint): Buffer {
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return unsignedInteger(Buffer.from(hex, 'hex'));
}

export function enumerated(value: number): Buffer {
  return tlv(0x0a, Buffer.from([value]));
}

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const bytes = [40 * parts[0]! + parts[1]!];
  for (const part of parts.slice(2)) {
    const chunk: number[] = [];
    let v = part;
    do {
      chunk.unshift(v & 0x7f);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < chunk.length - 1; i++) chunk[i]! |= 0x80;
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; seconds, always Z. */
export function time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  const rest = `${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}${pad(date.getUTCHours())}${pad(date.getUTCMinutes())}${pad(date.getUTCSeconds())}Z`;
  return year < 2050 ? tlv(0x17, Buffer.from(`${pad(year % 100)}${rest}`, 'ascii')) : tlv(0x18, Buffer.from(`${pad(year, 4)}${rest}`, 'ascii'));
}

const CRITICAL = tlv(0x01, Buffer.from([0xff]));

/** An X.509 Extension: SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }. */
export function extension(id: string, value: Buffer, critical = false): Buffer {
  return extensionOf(id, critical)(value);
}

/** An extension writer with its OID encoded once, for extensions written on every certificate. */
export function extensionOf(id: string, critical = false): (value: Buffer) => Buffer {
  const prefix = critical ? [oid(id), CRITICAL] : [oid(id)];
  return (value) => sequence(...prefix, octetString(value));
}
