// How a device comes by its certificates. Two narrow ports, so the way it does can change
// (a claim flow for first boot, a device-authenticated renewal) without the device
// changing: the implementations here use the operator API, as a factory tool would.
import type { ApiClient } from '../api-client.js';
import { makeDeviceKey } from '../identity.js';
import type { IssuedIdentity } from './credentials.js';

/** First identity: the device exists in the registry afterwards and holds a certificate. */
export interface Enroller {
  enroll(deviceId: string): Promise<IssuedIdentity>;
}

/** A new certificate for a device that has one, always with a fresh key. */
export interface Renewer {
  renew(deviceId: string, currentSerial: string): Promise<IssuedIdentity>;
}

/** Registers the device and sends the CSR of a key it made itself (the key never leaves). */
export class OperatorEnroller implements Enroller {
  constructor(
    private readonly api: ApiClient,
    private readonly attributes: Record<string, unknown> = { simulated: true },
  ) {}

  async enroll(deviceId: string): Promise<IssuedIdentity> {
    const key = await makeDeviceKey(deviceId);
    await this.api.createDevice(deviceId, this.attributes);
    const cert = await this.api.enroll(deviceId, key.csrPem);
    return { keyPem: key.keyPem, certificatePem: cert.certificate, serial: cert.serial, notBefore: cert.notBefore, notAfter: cert.notAfter };
  }
}

/**
 * Renewal as an operator-signed enrollment of a fresh CSR (`POST /v1/devices/{id}/certificates`):
 * the service has no device-authenticated renewal call yet. The old certificate stays good;
 * retiring it is the caller's decision.
 */
export class OperatorCsrRenewer implements Renewer {
  constructor(private readonly api: ApiClient) {}

  async renew(deviceId: string, _currentSerial: string): Promise<IssuedIdentity> {
    const key = await makeDeviceKey(deviceId);
    const cert = await this.api.enroll(deviceId, key.csrPem);
    return { keyPem: key.keyPem, certificatePem: cert.certificate, serial: cert.serial, notBefore: cert.notBefore, notAfter: cert.notAfter };
  }
}
