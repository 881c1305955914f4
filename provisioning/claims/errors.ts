// Why a claim was refused, beyond the CSR's and the registry's own codes. The code travels
// to the device in the claim topic's `…/rejected` reply, and to operators in the refusal event.
import { catalogueError } from '../../registry/errors.js';

export const CLAIM_ERRORS = {
  template_invalid: 'a claim template names its device id from declared parameters, with valid patterns, and device-id characters around them',
  claim_parameters_invalid: 'the parameters do not fit the claim batch’s template',
  claim_hook_denied: 'the pre-provisioning hook denied this device',
  claim_hook_failed: 'the pre-provisioning hook could not be asked, failed, or answered something that is not a decision',
  claim_hook_timeout: 'the pre-provisioning hook did not answer in time',
  claim_unavailable: 'the service could not complete the claim; try again on a new claim session',
} as const;

export type ClaimErrorCode = keyof typeof CLAIM_ERRORS;

export class ClaimError extends catalogueError('ClaimError', CLAIM_ERRORS) {}
