// The broker's side of break-glass: the approved, unexpired grants, kept in memory (so they
// work while the CA or even the registry cannot help), and the rule for when one applies.
import { grantStatus, type Grant } from '../registry/model.js';
import type { PeerCertificateFacts } from './peer.js';
import { isWaivable, PINNED_ONLY, type Reason } from './reasons.js';

export class GrantBook {
  readonly #byDevice = new Map<string, Map<string, Grant>>();

  replaceAll(grants: readonly Grant[]): void {
    this.#byDevice.clear();
    for (const grant of grants) this.put(grant);
  }

  put(grant: Grant): void {
    let grants = this.#byDevice.get(grant.deviceId);
    if (!grants) this.#byDevice.set(grant.deviceId, (grants = new Map<string, Grant>()));
    grants.set(grant.id, grant);
  }

  remove(grantId: string, deviceId: string): void {
    this.#byDevice.get(deviceId)?.delete(grantId);
  }

  forgetDevice(deviceId: string): void {
    this.#byDevice.delete(deviceId);
  }

  /** An active grant that lets this certificate pass `reason`, if there is one. */
  find(certificate: PeerCertificateFacts, reason: Reason, now: Date): Grant | undefined {
    if (!isWaivable(reason) || !certificate.commonName) return undefined;
    for (const grant of this.#byDevice.get(certificate.commonName)?.values() ?? []) {
      if (grant.waives !== reason || grantStatus(grant, now) !== 'ACTIVE') continue;
      if (grant.fingerprint ? grant.fingerprint === certificate.fingerprint : !PINNED_ONLY.includes(reason)) return grant;
    }
    return undefined;
  }
}
