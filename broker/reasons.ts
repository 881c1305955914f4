import type { WaivableReason as Waivable } from '../registry/waivers.js';

// The closed catalogue of refusals. Every refusal the broker makes names one of these; the
// CONNACK code comes from here, never from the call site. docs/reasons.md explains each one
// and a test keeps the two equal.

/** Where in a connection's life the refusal happens. */
export type RefusalStage = 'tls' | 'connect' | 'subscribe' | 'publish' | 'stream' | 'claim';

/** MQTT 3.1.1 CONNACK return codes used for refusals (§3.2.2.3). */
export type ConnackCode = 3 | 5;

interface ReasonInfo {
  stage: RefusalStage;
  connack?: ConnackCode;
  summary: string;
}

export const REASONS = {
  no_client_certificate: { stage: 'connect', connack: 5, summary: 'the device presented no client certificate' },
  unknown_issuer: { stage: 'connect', connack: 5, summary: 'the certificate does not chain to a CA this broker trusts' },
  chain_incomplete: { stage: 'connect', connack: 5, summary: 'the certificate’s issuer is a known CA, but the chain to a trusted root is missing a link' },
  certificate_expired: { stage: 'connect', connack: 5, summary: 'the certificate notAfter is in the past' },
  certificate_not_yet_valid: { stage: 'connect', connack: 5, summary: 'the certificate notBefore is in the future' },
  wrong_key_usage: { stage: 'connect', connack: 5, summary: 'the certificate is not allowed for TLS client authentication' },
  certificate_invalid: { stage: 'connect', connack: 5, summary: 'the TLS layer rejected the certificate for another reason' },
  client_id_mismatch: { stage: 'connect', connack: 5, summary: 'the MQTT client id differs from the device id in the certificate' },
  unregistered_certificate: { stage: 'connect', connack: 5, summary: 'the certificate is not in the registry' },
  certificate_revoked: { stage: 'connect', connack: 5, summary: 'the certificate is revoked' },
  certificate_inactive: { stage: 'connect', connack: 5, summary: 'the certificate is not active' },
  device_disabled: { stage: 'connect', connack: 5, summary: 'the device is disabled or decommissioned' },
  registry_unavailable: { stage: 'connect', connack: 3, summary: 'the registry could not answer and no fresh verdict was cached' },
  throttled: { stage: 'connect', connack: 3, summary: 'too many CONNECTs from this client id or address; try again later' },
  banned: { stage: 'connect', connack: 3, summary: 'this client id kept reconnecting too often and is banned for a while' },
  keepalive_out_of_bounds: { stage: 'connect', connack: 5, summary: 'the CONNECT keep-alive is outside what the broker accepts' },
  connect_timeout: { stage: 'connect', summary: 'no CONNECT arrived in time after the TLS handshake' },
  claim_batch_unknown: { stage: 'connect', connack: 5, summary: 'a claim certificate that is no claim batch’s' },
  claim_batch_revoked: { stage: 'connect', connack: 5, summary: 'the claim batch is revoked' },
  claim_session_invalid: { stage: 'connect', connack: 5, summary: 'a claim session needs client id claim/<batch>/<nonce>, a clean session and no will' },
  topic_denied: { stage: 'subscribe', summary: 'the topic is outside what the device may use' },
  too_many_subscriptions: { stage: 'subscribe', summary: 'the device already holds as many subscriptions as it may' },
  packet_too_large: { stage: 'stream', summary: 'an MQTT packet larger than the limit was announced' },
  publish_rate_exceeded: { stage: 'publish', summary: 'the device kept publishing faster than its rate limit allows' },
  protocol_violation: { stage: 'stream', summary: 'the device sent bytes that are not valid MQTT 3.1.1 at that point' },
  claim_request_invalid: { stage: 'claim', summary: 'a claim request that is malformed, has a bad CSR, or parameters that do not fit the template' },
  claim_rate_limited: { stage: 'claim', summary: 'the claim batch is over its request rate' },
  claim_replayed: { stage: 'claim', summary: 'a second CSR or registration in one claim session, a key already certified, or a certificate already registered' },
  claim_identity_refused: { stage: 'claim', summary: 'the device id the claim names exists already, or is decommissioned or disabled' },
  claim_hook_refused: { stage: 'claim', summary: 'the pre-provisioning hook denied the claim, failed or did not answer in time' },
  claim_unavailable: { stage: 'claim', summary: 'the service could not complete the claim request' },
  tls_handshake_failed: { stage: 'tls', summary: 'the TLS handshake did not complete' },
  handshake_timeout: { stage: 'tls', summary: 'the TLS handshake did not finish in time' },
} as const satisfies Record<string, ReasonInfo>;

export type Reason = keyof typeof REASONS;
export const ALL_REASONS = Object.keys(REASONS) as Reason[];

// What a break-glass grant may waive is decided in registry/waivers.ts, where the API reads it
// too; every waivable failure must be a reason of this catalogue.
export { PINNED_ONLY, WAIVABLE, isWaivable } from '../registry/waivers.js';
export type WaivableReason = Waivable;
type Holds<T extends true> = T;
/** Fails to compile if a waivable failure is no reason of this catalogue. */
export type WaivableAreReasons = Holds<Waivable extends Reason ? true : false>;

/**
 * Decisions monitor mode never relaxes: monitor mode is for rolling out the identity checks,
 * not for ignoring what an operator decided or what abuse control saw.
 */
export const ALWAYS_ENFORCED: readonly Reason[] = ['certificate_revoked', 'certificate_inactive', 'device_disabled', 'throttled', 'banned', 'keepalive_out_of_bounds'];

export function connackFor(reason: Reason): ConnackCode {
  const info: ReasonInfo = REASONS[reason];
  return info.connack ?? 5;
}

/** What is known about the other end when something is refused. */
export interface RefusalFacts {
  peer?: string;
  clientId?: string;
  deviceId?: string;
  serial?: string;
  fingerprint?: string;
  subject?: string;
  issuer?: string;
  topic?: string;
  detail?: string;
  /** The coded error a claim request was answered with. */
  code?: string;
}

/**
 * A refusal as an Error, for the places (Aedes callbacks) that only carry errors. Aedes
 * reads `returnCode` to fill the CONNACK.
 */
export class Refusal extends Error {
  override readonly name = 'Refusal';
  constructor(readonly reason: Reason, readonly facts: RefusalFacts = {}) {
    super(`${reason}: ${REASONS[reason].summary}`);
  }

  get returnCode(): ConnackCode {
    return connackFor(this.reason);
  }
}
