// Adapters from the registry to the narrow ports the broker declares.
import type { BrokerRegistry } from '../broker/broker.js';
import type { ClaimPort } from '../broker/fleet-topics/claim.js';
import type { ClaimProvisioning } from '../provisioning/claims/service.js';
import type { RenewalPort } from '../broker/fleet-topics/renew.js';
import { enrollmentJson } from '../provisioning/api/views.js';
import type { Provisioning } from '../provisioning/service.js';
import { CodedError } from '../registry/errors.js';
import { Batcher } from '../registry/batcher.js';
import type { DeviceId, Fingerprint, SerialHex } from '../registry/ids.js';
import type { CrlRevocations } from '../provisioning/crl-import.js';
import type { FleetGraph } from '../registry/graph.js';
import type { Registry } from '../registry/registry.js';

export function brokerRegistry(registry: Registry, brokerId: string, crls: CrlRevocations, graph: Pick<FleetGraph, 'hasNoGrants'>): BrokerRegistry {
  const actor = { kind: 'broker', id: brokerId } as const;
  // A CONNECT storm asks about thousands of certificates at once: the lookups in flight
  // together go to the registry as one query.
  const admissions = new Batcher(async (fingerprints: Fingerprint[]) => {
    const found = await registry.admissionRecords(fingerprints);
    return fingerprints.map((f) => found.get(f));
  });
  const access = new Batcher((deviceIds: DeviceId[]) => registry.groups.accessOfMany(deviceIds));
  return {
    admissionRecord: (fingerprint) => admissions.submit(fingerprint),
    // Most devices are no gateway and in no group: the fleet graph says so without a query,
    // and they keep their own namespace. Any other device's grants are read from the store.
    // (A graph behind the store can only say "grants" where there are none, which reads the
    // store, or "none" where a grant is newer, which withholds it: never more than is granted.)
    accessOf: (deviceId) => (graph.hasNoGrants(deviceId) ? Promise.resolve({ deviceId: deviceId as DeviceId, groups: [], children: [] }) : access.submit(deviceId as DeviceId)),
    externalCas: async () => (await registry.authorities.list()).filter((ca) => ca.external),
    cas: () => registry.authorities.list(),
    registerUnknown: (caId, certificate) => registry.authorities.registerUnknown(caId, certificate, actor),
    revokedByCrl: (caId, serial) => crls.has(caId, serial),
    recordSighting: (sighting) => registry.recordSighting(sighting),
    enforcement: async () => ({ listener: await registry.enforcement.listenerMode(), monitoredGroups: await registry.enforcement.monitoredGroups() }),
    activeGrants: () => registry.grants.active(),
    grant: (id) => registry.grants.get(id),
    recordGrantUse: (grant, details) => registry.grants.recordUse(grant, details, actor),
    renewalSeen: async (serial) => {
      await registry.lifecycle.retirePredecessor(serial as SerialHex, 'seen', actor);
    },
  };
}

/** Renewal over a device's MQTT session, served by provisioning; refusals keep their codes. */
export function renewalPort(registry: Registry, provisioning: Provisioning): RenewalPort {
  return {
    async renew(fingerprint, csrPem) {
      try {
        const current = await registry.lifecycle.certificateByFingerprint(fingerprint);
        if (!current) return { ok: false, code: 'client_certificate_unregistered', message: 'the session’s certificate is not in the registry' };
        const renewed = await provisioning.renew(current.serial, csrPem, { kind: 'device', id: current.deviceId });
        return { ok: true, certificate: enrollmentJson(renewed) };
      } catch (error) {
        if (!(error instanceof CodedError)) throw error;
        const { code, message } = error as CodedError<string>;
        return { ok: false, code, message };
      }
    },
    renewalWindowMs: async (caId) => (await provisioning.policyOf(caId)).renewalWindowMs,
  };
}

/** The broker's claim port: batches read from the registry, requests answered by provisioning. */
export function claimPort(registry: Registry, claims: ClaimProvisioning): ClaimPort {
  return {
    async claimBatch(fingerprint) {
      const batch = await registry.claims.byFingerprint(fingerprint as Fingerprint);
      return batch && { batchId: batch.id, status: batch.status, notAfter: batch.notAfter, rateLimit: batch.rateLimit };
    },
    createFromCsr: (context, request) => claims.createFromCsr(context, request),
    register: (context, request) => claims.register(context, request),
  };
}
