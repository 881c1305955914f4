// The benchmark's fleet: devices enrolled once through the public API, then connected to
// each broker under test in turn. Each device's TLS context (its key, certificate and the
// fleet's CA bundle) is built once and reused for every connection, as firmware would.
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { ApiClient } from '../api-client.js';
import { makeDeviceKey } from '../identity.js';
import { inPool } from '../stats.js';

export interface BenchDevice {
  id: string;
  serial: string;
  secureContext: SecureContext;
}

/**
 * The CA certificates a device sends after its own: the chain the API returned, less the
 * root, which the broker has and the device may leave out (RFC 8446 §4.4.2). The broker
 * keeps every certificate a device sends, parsed, for as long as it is connected.
 */
function intermediates(chainPem: string): string {
  const pems = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const notRoot = (pem: string) => {
    const certificate = new X509Certificate(pem);
    return certificate.subject !== certificate.issuer;
  };
  return pems
    .filter(notRoot)
    .map((pem) => pem + '\n')
    .join('');
}

/** Creates and enrolls `ids` (under `issuingCa`, or the service's default); a device that fails to enroll fails the benchmark. */
export async function enrollFleet(api: ApiClient, ids: string[], ca: string, concurrency: number, progress: (done: number) => void, issuingCa?: string): Promise<BenchDevice[]> {
  const devices = new Array<BenchDevice>(ids.length);
  let done = 0;
  await inPool(ids, concurrency, async (id, index) => {
    const key = await makeDeviceKey(id);
    await api.createDevice(id, { benchmark: true });
    const issued = await api.enroll(id, key.csrPem, issuingCa);
    devices[index] = { id, serial: issued.serial, secureContext: createSecureContext({ key: key.keyPem, cert: issued.certificate + intermediates(issued.chain), ca }) };
    if (++done % 500 === 0) progress(done);
  });
  return devices;
}

/**
 * A backend service that reads every device's telemetry: on our broker a member of a group
 * whose policy lets it subscribe to devices/+/telemetry; on Mosquitto an ACL entry for its name.
 */
export async function enrollReader(api: ApiClient, id: string, ca: string): Promise<BenchDevice> {
  const [reader] = await enrollFleet(api, [id], ca, 1, () => undefined);
  await api.createGroup('telemetry-readers', { publish: [], subscribe: ['devices/+/telemetry'] });
  await api.addGroupMember('telemetry-readers', id);
  return reader!;
}
