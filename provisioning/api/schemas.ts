// JSON schemas of request bodies and parameters. Unknown properties are refused, not
// silently dropped (the Ajv instance is configured with removeAdditional: false), and
// identifiers use the formats below, each with its own error code.
import { DEVICE_ID_PATTERN } from '../../registry/ids.js';
import { STATION_NAME_PATTERN } from '../../registry/stations.js';

export const NAME_PATTERN = '^[A-Za-z0-9._-]{1,64}$';

export const FORMATS = {
  'device-id': new RegExp(DEVICE_ID_PATTERN),
  'ca-id': new RegExp(NAME_PATTERN),
  'group-id': new RegExp(NAME_PATTERN),
  'batch-id': new RegExp(NAME_PATTERN),
  serial: /^(0x)?[0-9A-Fa-f:]{1,64}$/,
  'station-name': new RegExp(STATION_NAME_PATTERN),
};

const id = (format: keyof typeof FORMATS) => ({ type: 'string', format }) as const;
const reason = { type: 'string', minLength: 1, maxLength: 256 } as const;
const filters = { type: 'array', maxItems: 64, items: { type: 'string', minLength: 1, maxLength: 256 } } as const;
const policy = {
  type: 'object',
  required: ['publish', 'subscribe'],
  additionalProperties: false,
  properties: { publish: filters, subscribe: filters },
} as const;

export const params = {
  device: { type: 'object', required: ['deviceId'], properties: { deviceId: id('device-id') } },
  gatewayChild: { type: 'object', required: ['deviceId', 'childId'], properties: { deviceId: id('device-id'), childId: id('device-id') } },
  serial: { type: 'object', required: ['serial'], properties: { serial: id('serial') } },
  ca: { type: 'object', required: ['caId'], properties: { caId: id('ca-id') } },
  group: { type: 'object', required: ['groupId'], properties: { groupId: id('group-id') } },
  groupMember: { type: 'object', required: ['groupId', 'deviceId'], properties: { groupId: id('group-id'), deviceId: id('device-id') } },
  grant: { type: 'object', required: ['grantId'], properties: { grantId: { type: 'string', format: 'uuid' } } },
  claimBatch: { type: 'object', required: ['batchId'], properties: { batchId: id('batch-id') } },
  clientId: { type: 'object', required: ['clientId'], properties: { clientId: { type: 'string', minLength: 1, maxLength: 256 } } },
  station: { type: 'object', required: ['name'], properties: { name: id('station-name') } },
} as const;

export const bodies = {
  createDevice: {
    type: 'object',
    required: ['id'],
    additionalProperties: false,
    properties: { id: id('device-id'), attributes: { type: 'object', maxProperties: 64 }, gateway: { type: 'boolean' } },
  },
  enroll: {
    type: 'object',
    required: ['csr'],
    additionalProperties: false,
    properties: { csr: { type: 'string', minLength: 1, maxLength: 32768 }, ca: id('ca-id') },
  },
  generateKey: {
    type: 'object',
    required: ['format', 'passphrase'],
    additionalProperties: false,
    properties: { format: { enum: ['pkcs8', 'pkcs12'] }, passphrase: { type: 'string', minLength: 8, maxLength: 1024 }, ca: id('ca-id') },
  },
  renew: { type: 'object', required: ['csr'], additionalProperties: false, properties: { csr: { type: 'string', minLength: 1, maxLength: 32768 } } },
  /** Durations in whole seconds; the registry checks their bounds (invalid_ca_policy). */
  caPolicy: {
    type: 'object',
    additionalProperties: false,
    properties: {
      certificateLifetimeSeconds: { type: 'integer', minimum: 1 },
      renewalWindowSeconds: { type: 'integer', minimum: 0 },
      renewalGraceSeconds: { type: 'integer', minimum: 1 },
      requireNewKey: { type: 'boolean' },
    },
  },
  /** Status changes take an optional body: `curl -X POST` with none works. */
  reason: { type: ['object', 'null'], additionalProperties: false, properties: { reason } },
  createCa: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: id('ca-id'), parent: id('ca-id') } },
  externalCa: {
    type: 'object',
    required: ['name', 'certificate', 'verificationCertificate'],
    additionalProperties: false,
    properties: {
      name: id('ca-id'),
      certificate: { type: 'string', minLength: 1, maxLength: 65536 },
      verificationCertificate: { type: 'string', minLength: 1, maxLength: 16384 },
      unknownCertificates: { enum: ['refuse', 'register-pending', 'register-active'] },
    },
  },
  unknownCertificates: {
    type: 'object',
    required: ['unknownCertificates'],
    additionalProperties: false,
    properties: { unknownCertificates: { enum: ['refuse', 'register-pending', 'register-active'] } },
  },
  createGroup: {
    type: 'object',
    required: ['id'],
    additionalProperties: false,
    properties: { id: id('group-id'), description: { type: 'string', maxLength: 1024 }, policy },
  },
  policy,
  enforcement: { type: 'object', required: ['mode'], additionalProperties: false, properties: { mode: { enum: ['enforce', 'monitor'] } } },
  grant: {
    type: 'object',
    required: ['deviceId', 'waives', 'reason', 'durationSeconds'],
    additionalProperties: false,
    properties: {
      deviceId: id('device-id'),
      fingerprint: { type: 'string', pattern: '^[0-9a-fA-F:]{64,95}$' },
      waives: { type: 'string', maxLength: 64 },
      reason: { type: 'string', minLength: 1, maxLength: 1024 },
      durationSeconds: { type: 'integer', minimum: 1 },
    },
  },
} as const;

const claimTemplate = {
  type: 'object',
  required: ['deviceId', 'parameters'],
  additionalProperties: false,
  properties: {
    deviceId: { type: 'string', minLength: 1, maxLength: 256 },
    parameters: {
      type: 'object',
      maxProperties: 32,
      additionalProperties: { type: 'object', additionalProperties: false, properties: { pattern: { type: 'string', minLength: 1, maxLength: 256 }, required: { type: 'boolean' } } },
    },
    attributes: { type: 'object', maxProperties: 64 },
    groups: { type: 'array', maxItems: 16, items: id('group-id') },
  },
} as const;

export const claimBodies = {
  createBatch: {
    type: 'object',
    required: ['name', 'template'],
    additionalProperties: false,
    properties: {
      name: id('batch-id'),
      template: claimTemplate,
      // Short-lived by design: a production batch's claim, at most 90 days.
      validitySeconds: { type: 'integer', minimum: 60, maximum: 90 * 24 * 3600 },
      rateLimit: {
        type: 'object',
        required: ['perSecond', 'burst'],
        additionalProperties: false,
        properties: { perSecond: { type: 'number', exclusiveMinimum: 0, maximum: 10_000 }, burst: { type: 'integer', minimum: 1, maximum: 100_000 } },
      },
      hook: {
        type: 'object',
        required: ['url'],
        additionalProperties: false,
        properties: { url: { type: 'string', pattern: '^https?://', maxLength: 2048 }, timeoutMs: { type: 'integer', minimum: 100, maximum: 30_000 } },
      },
      csr: { type: 'string', minLength: 1, maxLength: 32768 },
    },
  },
} as const;

export const queries = {
  audit: {
    type: 'object',
    additionalProperties: false,
    properties: {
      device: id('device-id'),
      certificate: id('serial'),
      actor: { type: 'string', maxLength: 200 },
      since: { type: 'string', format: 'date-time' },
      until: { type: 'string', format: 'date-time' },
      after: { type: 'string', pattern: '^[0-9]{1,15}$' },
      limit: { type: 'string', pattern: '^[0-9]{1,4}$' },
    },
  },
  report: { type: 'object', additionalProperties: false, properties: { days: { type: 'string', pattern: '^[0-9]{1,4}$' } } },
  batch: { type: 'object', additionalProperties: false, properties: { ca: id('ca-id') } },
} as const;
