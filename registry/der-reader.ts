// A strict reader of DER (X.690) TLVs: definite lengths only, every length inside its
// parent, nothing left over. Enough to take a PKCS#10 request or a certificate's names apart
// without a general ASN.1 library.

export interface Tlv {
  tag: number;
  /** Where the tag byte is. */
  offset: number;
  /** Where the contents start. */
  start: number;
  /** Where the contents (and the TLV) end. */
  end: number;
}

export class DerError extends Error {
  override readonly name = 'DerError';
}

export function readTlv(der: Uint8Array, offset: number, limit = der.length): Tlv {
  if (offset + 2 > limit) throw new DerError(`truncated at ${offset}`);
  const tag = der[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`multi-byte tag at ${offset}`);
  let length = der[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    // DER: the long form only when needed, no leading zero bytes, at most 4 bytes here.
    if (count === 0 || count > 4) throw new DerError(`unsupported length at ${offset}`);
    if (start + count > limit) throw new DerError(`truncated length at ${offset}`);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + der[start + i]!;
    if (length < 0x80 || der[start] === 0) throw new DerError(`non-minimal length at ${offset}`);
    start += count;
  }
  const end = start + length;
  if (end > limit) throw new DerError(`length runs past its parent at ${offset}`);
  return { tag, offset, start, end };
}

/** The children of a constructed TLV, in order. */
export function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const child = readTlv(der, at, parent.end);
    out.push(child);
    at = child.end;
  }
  return out;
}

export function expectTag(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (!tlv || tlv.tag !== tag) throw new DerError(`expected ${what}`);
  return tlv;
}
