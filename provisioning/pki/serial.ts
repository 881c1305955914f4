import { randomFillSync } from 'node:crypto';
import type { SerialHex } from '../../registry/ids.js';

const SERIAL_BYTES = 16;
const pool = Buffer.alloc(SERIAL_BYTES * 256);
let offset = pool.length;

/**
 * 16 bytes (RFC 5280 §4.1.2.2 allows up to 20): a 4-bit marker 0x4, the time of issue in
 * milliseconds (44 bits, enough until the year 2527), then 80 random bits (CA/B Forum asks
 * for at least 64). The marker keeps the INTEGER positive with no padding byte, so every tool
 * prints the same 32 hex digits. Time first means serials issued together sort together, and
 * the registry's serial index takes each new one near the last instead of at a random page.
 * The time is only an ordering hint: nothing reads it back.
 */
export function randomSerial(now = Date.now()): SerialHex {
  // Drawn from a pool refilled 256 serials at a time: one call into the CSPRNG, not one per certificate.
  if (offset === pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const bytes = pool.subarray(offset, (offset += SERIAL_BYTES));
  const ms = Math.max(0, Math.floor(now));
  const high = Math.floor(ms / 2 ** 32); // bits 43..32
  bytes[0] = 0x40 | ((high >>> 8) & 0x0f);
  bytes[1] = high & 0xff;
  bytes.writeUInt32BE(ms % 2 ** 32, 2);
  return bytes.toString('hex') as SerialHex;
}
