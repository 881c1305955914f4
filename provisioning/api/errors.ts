// Every error the API returns, with its HTTP status. A handler throws a code (or a domain
// error carrying one); the status comes from this table, never from the call site.
import { CodedError, REGISTRY_ERRORS, type RegistryErrorCode } from '../../registry/errors.js';
import { CLAIM_ERRORS } from '../claims/errors.js';
import { BusUnavailableError } from '../../registry/redis-bus.js';
import { CREDENTIAL_ERRORS } from '../credential-errors.js';
import { EXTERNAL_CA_ERRORS } from '../external-ca.js';
import { RENEWAL_ERRORS } from '../renewal.js';
import { CSR_ERRORS } from '../pki/csr.js';

interface ApiErrorInfo {
  status: number;
  summary: string;
}

const withStatus = <T extends Record<string, string>>(table: T, status: (code: keyof T) => number) =>
  Object.fromEntries(Object.entries(table).map(([code, summary]) => [code, { status: status(code), summary }])) as { [K in keyof T]: ApiErrorInfo };

const REGISTRY_STATUS: Record<RegistryErrorCode, number> = {
  device_exists: 409,
  device_not_found: 404,
  device_decommissioned: 409,
  device_disabled: 409,
  certificate_not_found: 404,
  certificate_revoked: 409,
  public_key_in_use: 409,
  illegal_transition: 409,
  ca_exists: 409,
  ca_not_found: 404,
  ca_revoked: 409,
  ca_is_root: 409,
  ca_cannot_issue: 409,
  ca_not_signing: 409,
  ca_retired: 409,
  registration_code_invalid: 400,
  group_exists: 409,
  group_not_found: 404,
  invalid_policy: 400,
  not_a_gateway: 409,
  gateway_cycle: 409,
  operator_exists: 409,
  station_exists: 409,
  station_not_found: 404,
  role_unknown: 400,
  invalid_ca_policy: 400,
  grant_not_found: 404,
  grant_not_pending: 409,
  grant_self_approval: 409,
  grant_ended: 409,
  claim_batch_exists: 409,
  claim_batch_not_found: 404,
  claim_batch_revoked: 409,
  claim_batch_expired: 409,
  claim_device_exists: 409,
  claim_binding_unknown: 409,
  claim_already_registered: 409,
};

export const API_ERRORS = {
  invalid_body: { status: 400, summary: 'the request does not match the schema' },
  invalid_device_id: { status: 400, summary: 'device ids are 1–128 characters of A–Z, a–z, 0–9, ".", "_", ":" and "-"' },
  invalid_ca_id: { status: 400, summary: 'CA ids are 1–64 characters of A–Z, a–z, 0–9, ".", "_" and "-"' },
  invalid_group_id: { status: 400, summary: 'group ids are 1–64 characters of A–Z, a–z, 0–9, ".", "_" and "-"' },
  invalid_serial: { status: 400, summary: 'serials are hexadecimal, optionally with colons' },
  invalid_batch_id: { status: 400, summary: 'claim batch ids are 1–64 characters of A–Z, a–z, 0–9, ".", "_" and "-"' },
  template_invalid: { status: 400, summary: CLAIM_ERRORS.template_invalid },
  invalid_station_name: { status: 400, summary: 'station names are 1–64 characters of A–Z, a–z, 0–9, ".", "_" and "-"' },
  malformed_json: { status: 400, summary: 'the request body is not valid JSON' },
  bad_request: { status: 400, summary: 'the request is malformed' },
  token_missing: { status: 401, summary: 'this call needs Authorization: Bearer <operator token>, or a client certificate' },
  token_invalid: { status: 401, summary: 'the bearer token is not a valid operator token' },
  forbidden: { status: 403, summary: 'none of the caller’s roles may make this call' },
  not_found: { status: 404, summary: 'no such endpoint' },
  body_too_large: { status: 413, summary: 'the request body is larger than allowed' },
  unsupported_media_type: { status: 415, summary: 'send JSON with Content-Type: application/json' },
  grant_not_waivable: { status: 400, summary: 'a grant may waive only certificate flaws: never a revocation, a disabled device, an identity mismatch or abuse control' },
  grant_needs_fingerprint: { status: 400, summary: 'this failure can only be waived for one certificate: give its fingerprint' },
  grant_too_long: { status: 400, summary: 'the grant would last longer than the configured maximum' },
  idempotency_key_invalid: { status: 400, summary: 'a batch needs Idempotency-Key: 1–128 characters of A–Z, a–z, 0–9, ".", "_", ":" and "-"' },
  line_too_long: { status: 400, summary: 'a batch line is longer than 64 KiB' },
  internal_error: { status: 500, summary: 'the service failed; the failure is logged' },
  event_bus_unavailable: { status: 503, summary: 'the change is durable but the cluster’s event bus (Redis) could not be reached to announce it; this node announces it once the bus is back, and repeating the call announces it again' },
  bus_disconnected: { status: 503, summary: 'this node is cut off from the cluster’s event bus (Redis)' },
  bus_catching_up: { status: 503, summary: 'this node is back on the event bus and re-reading the registry' },
  registry_unreachable: { status: 503, summary: 'the registry database cannot be reached' },
  ...withStatus(CREDENTIAL_ERRORS, () => 401),
  ...withStatus(RENEWAL_ERRORS, () => 400),
  ...withStatus(CSR_ERRORS, () => 400),
  ...withStatus(EXTERNAL_CA_ERRORS, () => 400),
  ...withStatus(REGISTRY_ERRORS, (code) => REGISTRY_STATUS[code]),
} as const satisfies Record<string, ApiErrorInfo>;

export type ApiErrorCode = keyof typeof API_ERRORS;

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(readonly code: ApiErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? API_ERRORS[code].summary, options);
  }

  get status(): number {
    return API_ERRORS[this.code].status;
  }
}

interface FastifyishError extends Error {
  code?: string;
  statusCode?: number;
  validation?: { keyword: string; params?: { format?: string } }[];
}

// The Ajv formats the schemas use for identifiers, and the code a value that is not one gets.
const FORMAT_CODES: Record<string, ApiErrorCode> = {
  'device-id': 'invalid_device_id',
  'ca-id': 'invalid_ca_id',
  'group-id': 'invalid_group_id',
  'batch-id': 'invalid_batch_id',
  serial: 'invalid_serial',
  'station-name': 'invalid_station_name',
};

/** Maps anything a request can throw to the one API error it means. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof BusUnavailableError) return new ApiError('event_bus_unavailable', undefined, { cause: error });
  // Domain errors carry codes from catalogues this table includes.
  if (error instanceof CodedError && error.code in API_ERRORS) return new ApiError(error.code as ApiErrorCode, error.message);
  const e = error as FastifyishError;
  if (e.validation) {
    const first = e.validation[0];
    const code = first?.keyword === 'format' ? FORMAT_CODES[first.params?.format ?? ''] : undefined;
    return new ApiError(code ?? 'invalid_body', `${API_ERRORS[code ?? 'invalid_body'].summary} (${e.message})`);
  }
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError('unsupported_media_type');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('body_too_large');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError('malformed_json');
  }
  if (e instanceof SyntaxError) return new ApiError('malformed_json');
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return new ApiError('bad_request', e.message);
  return new ApiError('internal_error', undefined, { cause: error });
}
