// The claim batch a simulated fleet enrolls by: created through the API as a factory would
// create one for a production run, with a template that names each device from its serial
// number — `<prefix>-${SerialNumber}`, so claimed devices get the ids the simulator numbers
// them by — and a rate limit the fleet's pace keeps under.
import { createSecureContext } from 'node:tls';
import type { ApiClient } from './api-client.js';
import { ClaimClient, type ClaimObserver } from './device/claim.js';
import { MqttClaimTransport } from './device/claim-session.js';
import type { BackoffPolicy, Random } from './device/backoff.js';
import { ClaimEnroller } from './device/issuance.js';
import { makeDeviceKey } from './identity.js';
import { claimLimits, Pacer, type Rate } from './pacer.js';
import type { Timers } from './timers.js';

export const SERIAL_PARAMETER = 'SerialNumber';
/** The claim requests a batch takes per second unless told otherwise: two per device, 200 devices a second. */
export const DEFAULT_CLAIM_RATE = 400;
/** The API's bounds on a batch's rate (docs/api.md, claim batches). */
export const MAX_CLAIM_RATE = 10_000;
/** Claim sessions a device tries before it gives its claim up. */
const MAX_CLAIM_SESSIONS = 8;

/** A batch name (1–64 of [A-Za-z0-9._-]) from the fleet's id prefix, which may also hold ':'. */
export function claimBatchName(prefix: string): string {
  return `${prefix.replace(/:/g, '.').slice(0, 58)}-claim`;
}

/** The simulator's device ids end in their serial number: `<prefix>-000042`. */
export function serialOf(prefix: string, deviceId: string): string {
  return deviceId.slice(prefix.length + 1);
}

export function claimTemplate(prefix: string) {
  return {
    deviceId: `${prefix}-\${${SERIAL_PARAMETER}}`,
    parameters: { [SERIAL_PARAMETER]: { pattern: '[0-9]{6,12}' } },
    attributes: { simulated: true, serialNumber: `\${${SERIAL_PARAMETER}}` },
  };
}

export interface SimClaimBatch {
  name: string;
  /** The batch's limit on claim requests, as created. */
  rateLimit: Rate;
  /** The pace the fleet's devices keep, under that limit. */
  pace: Rate;
  enroller: ClaimEnroller;
}

export interface ClaimBatchSetup {
  api: ApiClient;
  prefix: string;
  requestsPerSecond: number;
  caPem: string;
  broker: { host: string; port: number };
  timers: Timers;
  random: Random;
  backoff: BackoffPolicy;
  connectTimeoutMs: number;
  observer: ClaimObserver;
}

/** Creates the batch through the API and the enroller its devices claim with. */
export async function createClaimBatch(setup: ClaimBatchSetup): Promise<SimClaimBatch> {
  const limits = claimLimits(setup.requestsPerSecond);
  const created = await setup.api.createClaimBatch({ name: claimBatchName(setup.prefix), template: claimTemplate(setup.prefix), rateLimit: limits.batch });
  const transport = new MqttClaimTransport({
    broker: setup.broker,
    batch: created.id,
    // One context for the whole batch: every device of it holds the same claim key and certificate.
    secureContext: createSecureContext({ key: created.key, cert: created.certificate, ca: setup.caPem }),
    timers: setup.timers,
    connectTimeoutMs: setup.connectTimeoutMs,
    replyTimeoutMs: setup.connectTimeoutMs,
  });
  const client = new ClaimClient({
    transport,
    pacer: new Pacer(limits.pace, setup.timers),
    timers: setup.timers,
    random: setup.random,
    backoff: setup.backoff,
    maxSessions: MAX_CLAIM_SESSIONS,
    observer: setup.observer,
    // The CSR's subject is the serial number; the certificate's is the device id the template makes.
    makeKey: (nonce) => makeDeviceKey(nonce),
  });
  const enroller = new ClaimEnroller(client, (deviceId) => {
    const serial = serialOf(setup.prefix, deviceId);
    return { nonce: serial, parameters: { [SERIAL_PARAMETER]: serial } };
  });
  return { name: created.id, rateLimit: created.rateLimit, pace: limits.pace, enroller };
}
