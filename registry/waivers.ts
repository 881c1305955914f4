// Which failed checks a break-glass grant may let a device pass. The API validates grants
// against this list and the broker applies them by it, so it lives here, below both.

/**
 * The failures a break-glass grant may let a device pass: flaws of a certificate the fleet
 * otherwise knows. Never a decision somebody made (revoked, inactive on purpose is allowed,
 * disabled), never who the device claims to be, never abuse. Each is a refusal reason of
 * the broker's catalogue (broker/reasons.ts checks so when compiling).
 */
export const WAIVABLE = [
  'certificate_expired',
  'certificate_not_yet_valid',
  'chain_incomplete',
  'unknown_issuer',
  'wrong_key_usage',
  'certificate_invalid',
  'unregistered_certificate',
  'certificate_inactive',
  'registry_unavailable',
] as const;
export type WaivableReason = (typeof WAIVABLE)[number];

/** Waivable only for a grant pinned to one certificate's fingerprint: the registry cannot vouch for these. */
export const PINNED_ONLY: readonly WaivableReason[] = ['chain_incomplete', 'unknown_issuer', 'unregistered_certificate', 'registry_unavailable'];

export function isWaivable(reason: string): reason is WaivableReason {
  return (WAIVABLE as readonly string[]).includes(reason);
}
