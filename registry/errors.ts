// Registry failures a caller can act on. The code is stable and travels to the API as is.
export const REGISTRY_ERRORS = {
  device_exists: 'a device with this id already exists',
  device_not_found: 'no device with this id',
  device_decommissioned: 'the device was revoked; enroll a replacement under a new id',
  device_disabled: 'the device is disabled',
  certificate_not_found: 'no certificate with this serial',
  certificate_revoked: 'the certificate is revoked, which is final',
  public_key_in_use: 'this public key belongs to another identity or to a revoked certificate',
  illegal_transition: 'that status change is not allowed',
  ca_exists: 'a CA with this name already exists',
  ca_not_found: 'no CA with this id',
  ca_revoked: 'the CA is revoked, which is final',
  ca_is_root: 'the root CA cannot be revoked or used here',
  ca_cannot_issue: 'this CA cannot issue here (external, revoked, or not allowed to sign CAs)',
  ca_not_signing: 'this issuing CA is not the one rotation has signing now (prepared, superseded or retired)',
  ca_retired: 'the CA is retired: nothing under it is trusted any more',
  registration_code_invalid: 'the verification certificate does not name an unused, unexpired registration code',
  group_exists: 'a group with this id already exists',
  group_not_found: 'no group with this id',
  invalid_policy: 'topic policies are lists of MQTT topic filters; the only variable is ${deviceId}',
  not_a_gateway: 'the device is not a gateway',
  gateway_cycle: 'a device cannot be the gateway of itself or of its own gateway',
  operator_exists: 'an operator with this name already exists',
  station_exists: 'a station with this name already exists',
  station_not_found: 'no station with this name',
  role_unknown: 'not a role, or not one this kind of holder may be given',
  invalid_ca_policy: 'a CA policy duration is out of bounds',
  grant_not_found: 'no break-glass grant with this id',
  grant_not_pending: 'the grant is not waiting for approval',
  grant_self_approval: 'a grant must be approved by another operator than the one who opened it',
  grant_ended: 'the grant has already ended',
  claim_batch_exists: 'a claim batch with this name already exists',
  claim_batch_not_found: 'no claim batch with this id',
  claim_batch_revoked: 'the claim batch is revoked, which is final',
  claim_batch_expired: 'the claim batch’s certificate has expired',
  claim_device_exists: 'a device with this id exists and was not left pending by this claim batch',
  claim_binding_unknown: 'this claim batch issued no pending certificate with this serial for this device',
  claim_already_registered: 'this certificate was already registered',
} as const;

export type RegistryErrorCode = keyof typeof REGISTRY_ERRORS;

/**
 * A failure from a closed catalogue of codes. The code is what callers branch on and what
 * the API returns; the message is the catalogue's summary plus any detail.
 */
export abstract class CodedError<Code extends string = string> extends Error {
  constructor(
    readonly code: Code,
    summary: string,
    detail?: string,
    options?: { cause?: unknown },
  ) {
    super(detail ? `${summary}: ${detail}` : summary, options);
  }
}

/** The error class of a catalogue: its codes, its summaries, its name. */
export function catalogueError<Table extends Record<string, string>>(name: string, table: Table) {
  return class extends CodedError<keyof Table & string> {
    override readonly name = name;
    constructor(code: keyof Table & string, detail?: string, options?: { cause?: unknown }) {
      super(code, table[code]!, detail, options);
    }
  };
}

export class RegistryError extends catalogueError('RegistryError', REGISTRY_ERRORS) {}
