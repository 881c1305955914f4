// Identifiers shared by every part: what a device id may be, and the one spelling of
// serial numbers and fingerprints used in the store, the API and the events.

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

export type DeviceId = Brand<string, 'DeviceId'>;
/** Lowercase hex of the certificate serial number, as DER encodes it (no sign padding). */
export type SerialHex = Brand<string, 'SerialHex'>;
/** Lowercase hex SHA-256 of the certificate's DER encoding. */
export type Fingerprint = Brand<string, 'Fingerprint'>;

// Contract v1: 1–128 characters of [A-Za-z0-9._:-]. None of them is special in an MQTT
// topic ('/', '+', '#') or in a URL path segment, so an id can be embedded in both as is.
export const DEVICE_ID_PATTERN = '^[A-Za-z0-9._:-]{1,128}$';
const deviceIdRe = new RegExp(DEVICE_ID_PATTERN);

export function isDeviceId(value: unknown): value is DeviceId {
  return typeof value === 'string' && deviceIdRe.test(value);
}

/** Accepts the spellings people paste: `0A:1B`, `0a1b`, `0x0A1B`; returns lowercase hex. */
export function parseSerial(value: string): SerialHex | undefined {
  const hex = value.trim().replace(/^0x/i, '').replace(/:/g, '').toLowerCase();
  if (hex.length === 0 || hex.length > 40 || !/^[0-9a-f]+$/.test(hex)) return undefined;
  // openssl prints whole bytes; a leading zero nibble may have been dropped by other tools.
  return (hex.length % 2 === 1 ? `0${hex}` : hex) as SerialHex;
}

export function toFingerprint(value: string): Fingerprint {
  return value.replace(/:/g, '').toLowerCase() as Fingerprint;
}
