import { randomFillSync } from 'node:crypto';
import type { SerialHex } from '../../registry/ids.js';

const pool = Buffer.alloc(16 * 256);
let offset = pool.length;

/**
 * 16 random bytes (RFC 5280 §4.1.2.2 allows up to 20; CA/B Forum asks for 64 bits of entropy).
 * The first byte is kept in 0x10–0x7f so the INTEGER is positive with no padding byte and
 * every tool prints the same 32 hex digits.
 */
export function randomSerial(): SerialHex {
  // Drawn from a pool refilled 256 serials at a time: one call into the CSPRNG, not one per certificate.
  if (offset === pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const bytes = pool.subarray(offset, (offset += 16));
  bytes[0] = 0x10 + (bytes[0]! % 0x70);
  return bytes.toString('hex') as SerialHex;
}

