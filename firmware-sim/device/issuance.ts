// How a device comes by its certificates. Two narrow ports, so the way it does can change
// without the device changing. Enrollment: through the operator API, as a factory tool
// registers a device and signs its CSR, or by claim, as firmware turns its batch's claim
// certificate into an identity of its own. Renewal, always with a fresh key: over the
// device's own MQTT session, over HTTPS with its current certificate, or through the
// operator API.
import type { MqttClient } from 'mqtt';
import type { ApiClient, EnrolledCertificate } from '../api-client.js';
import { makeDeviceKey, type DeviceKey } from '../identity.js';
import type { Timers } from '../timers.js';
import { ClaimFailed, type ClaimClient } from './claim.js';
import type { Credentials, IssuedIdentity } from './credentials.js';
import { exchange, ExchangeError, replyTopics, subscribeAll, type JsonObject } from './mqtt-exchange.js';

export const ENROLLMENT_CHANNELS = ['api', 'claim'] as const;
export type EnrollmentChannel = (typeof ENROLLMENT_CHANNELS)[number];

export const RENEWAL_CHANNELS = ['mqtt', 'https', 'api'] as const;
export type RenewalChannel = (typeof RENEWAL_CHANNELS)[number];

/** First identity: the device exists in the registry afterwards and holds a certificate. */
export interface Enroller {
  readonly channel: EnrollmentChannel;
  enroll(deviceId: string): Promise<IssuedIdentity>;
}

/** What a renewal may use of the device: its id, its current certificate, its live session. */
export interface RenewingDevice {
  readonly id: string;
  readonly credentials: Credentials | undefined;
  /** The MQTT session the device is online on, if it is. */
  readonly session: MqttClient | undefined;
}

/** A new certificate for a device that has one, always with a fresh key. */
export interface Renewer {
  readonly channel: RenewalChannel;
  renew(device: RenewingDevice): Promise<IssuedIdentity>;
}

function issuedOf(key: DeviceKey, cert: Pick<EnrolledCertificate, 'certificate' | 'serial' | 'notBefore' | 'notAfter'>): IssuedIdentity {
  return { keyPem: key.keyPem, certificatePem: cert.certificate, serial: cert.serial, notBefore: cert.notBefore, notAfter: cert.notAfter };
}

/** Registers the device and sends the CSR of a key it made itself (the key never leaves). */
export class OperatorEnroller implements Enroller {
  readonly channel = 'api';

  constructor(
    private readonly api: ApiClient,
    private readonly attributes: Record<string, unknown> = { simulated: true },
  ) {}

  async enroll(deviceId: string): Promise<IssuedIdentity> {
    const key = await makeDeviceKey(deviceId);
    await this.api.createDevice(deviceId, this.attributes);
    return issuedOf(key, await this.api.enroll(deviceId, key.csrPem));
  }
}

/**
 * Enrollment by claim: the device's serial number (the last part of its id, as the
 * simulator's claim template names devices) is the claim session's nonce and the template's
 * parameter; the service names the device from it.
 */
export class ClaimEnroller implements Enroller {
  readonly channel = 'claim';

  constructor(
    private readonly client: ClaimClient,
    /** The template's parameters for a device id, and the nonce to claim it under. */
    private readonly claimOf: (deviceId: string) => { nonce: string; parameters: Record<string, string> },
  ) {}

  async enroll(deviceId: string): Promise<IssuedIdentity> {
    const { nonce, parameters } = this.claimOf(deviceId);
    const claimed = await this.client.claim(nonce, parameters);
    if (claimed.deviceId !== deviceId) throw new ClaimFailed('claim_device_unexpected', 'create', `the claim made device ${claimed.deviceId}, not ${deviceId}`);
    return claimed;
  }
}

/**
 * Renewal as an operator-signed enrollment of a fresh CSR (`POST /v1/devices/{id}/certificates`),
 * as a factory tool would re-issue. The old certificate stays ACTIVE; retiring it is the
 * caller's decision.
 */
export class OperatorCsrRenewer implements Renewer {
  readonly channel = 'api';

  constructor(private readonly api: ApiClient) {}

  async renew(device: RenewingDevice): Promise<IssuedIdentity> {
    const key = await makeDeviceKey(device.id);
    return issuedOf(key, await this.api.enroll(device.id, key.csrPem));
  }
}

/** `POST /v1/renew` over mutual TLS with the device's current certificate as the credential. */
export class HttpsRenewer implements Renewer {
  readonly channel = 'https';

  constructor(private readonly api: ApiClient) {}

  async renew(device: RenewingDevice): Promise<IssuedIdentity> {
    const key = await makeDeviceKey(device.id);
    if (!device.credentials) throw new ExchangeError('offline', 'the device holds no certificate to renew');
    return issuedOf(key, await this.api.renewAsDevice(device.credentials.secureContext, key.csrPem));
  }
}

export const RENEW_TOPICS = replyTopics('$fleet/certificates/renew/json');

/**
 * `$fleet/certificates/renew/json` on the device's own MQTT session: subscribe to the two
 * reply topics (the broker issues nothing to a session that would not hear the answer), send
 * the CSR, take the certificate from `…/accepted`. Offline, it fails, and the renewal is
 * retried with its backoff.
 */
export class MqttRenewer implements Renewer {
  readonly channel = 'mqtt';

  constructor(
    private readonly timers: Timers,
    private readonly replyTimeoutMs: number,
  ) {}

  async renew(device: RenewingDevice): Promise<IssuedIdentity> {
    const key = await makeDeviceKey(device.id);
    const session = device.session;
    if (!session) throw new ExchangeError('offline');
    await subscribeAll(session, [RENEW_TOPICS.accepted, RENEW_TOPICS.rejected], 0);
    const reply = await exchange(session, RENEW_TOPICS, { csr: key.csrPem }, { timers: this.timers, timeoutMs: this.replyTimeoutMs, qos: 1 });
    return issuedOf(key, certificateOf(reply));
  }
}

/** The certificate fields of an accepted renewal reply (the same JSON as `POST /v1/renew`). */
function certificateOf(reply: JsonObject): Pick<EnrolledCertificate, 'certificate' | 'serial' | 'notBefore' | 'notAfter'> {
  const fields = ['certificate', 'serial', 'notBefore', 'notAfter'] as const;
  for (const field of fields) if (typeof reply[field] !== 'string') throw new ExchangeError('reply_unreadable', `the accepted reply has no "${field}"`);
  return reply as unknown as Pick<EnrolledCertificate, 'certificate' | 'serial' | 'notBefore' | 'notAfter'>;
}
