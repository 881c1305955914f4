// The registry's answers about certificates, cached by fingerprint so a CONNECT storm does
// not become a query storm. Events keep it right; the TTL bounds how long an answer may be
// trusted if an event were ever missed.
import { LRUCache } from 'lru-cache';
import type { RegistryEvent } from '../registry/events.js';
import type { Fingerprint } from '../registry/ids.js';
import type { AdmissionRecord } from '../registry/model.js';
import type { Standing } from './admission.js';

/** What the broker needs from the registry to decide on a CONNECT (a narrow port). */
export interface AdmissionSource {
  admissionRecord(fingerprint: Fingerprint): Promise<AdmissionRecord | undefined>;
}

export interface VerdictCacheOptions {
  maxEntries: number;
  /** How long a registered certificate's standing is trusted without an event. */
  ttlMs: number;
  /** How long "not in the registry" is remembered; short, since enrollment follows. */
  unregisteredTtlMs: number;
}

export class RegistryUnavailableError extends Error {
  override readonly name = 'RegistryUnavailableError';
}

export class VerdictCache {
  readonly #cache: LRUCache<Fingerprint, Standing>;
  /** Counts device status events; a lookup that straddles one is repeated. */
  #deviceEpoch = 0;
  /** Set while events may be missed (a cluster node cut off from its bus): every lookup reads the registry. */
  #readThrough = false;

  constructor(source: AdmissionSource, private readonly options: VerdictCacheOptions) {
    this.#cache = new LRUCache<Fingerprint, Standing>({
      max: options.maxEntries,
      ttl: options.ttlMs,
      // Never serve a stale answer, and let a set() during a lookup abort that lookup: an
      // event's tombstone must win over a read that started before it (DESIGN, lru-cache 11).
      allowStale: false,
      ignoreFetchAbort: false,
      fetchMethod: async (fingerprint, _stale, { options: entry }) => {
        let record: AdmissionRecord | undefined;
        try {
          record = await source.admissionRecord(fingerprint);
        } catch (cause) {
          // Typed here, so standing() can tell a failing registry from an aborted lookup.
          throw new RegistryUnavailableError('registry lookup failed', { cause });
        }
        if (record) return { kind: 'registered', record };
        entry.ttl = this.options.unregisteredTtlMs; // remember a miss only briefly
        return { kind: 'unregistered' };
      },
    });
  }

  async standing(fingerprint: Fingerprint): Promise<Standing> {
    // An event about this certificate aborts a lookup in flight (lru-cache drops or replaces
    // the entry). Then the event's tombstone is the answer, or else a second read, made after
    // the event's commit. An event about a device cannot name the lookups it spoils, so any
    // device event during a lookup sends it round again too. Events are published after
    // they are durable, so the second read sees them.
    for (let attempt = 0; attempt < 3; attempt++) {
      const deviceEpoch = this.#deviceEpoch;
      let standing: Standing | undefined;
      try {
        standing = await this.#cache.fetch(fingerprint, this.#readThrough ? { forceRefresh: true } : undefined);
      } catch (error) {
        if (error instanceof RegistryUnavailableError) throw error;
        continue; // aborted by an event
      }
      if (deviceEpoch !== this.#deviceEpoch) {
        this.#cache.delete(fingerprint);
        continue;
      }
      standing ??= this.#cache.get(fingerprint);
      if (standing) return standing;
    }
    throw new RegistryUnavailableError('registry lookup kept being overtaken by status changes');
  }

  /**
   * While on, cached answers are not trusted: each lookup reads the registry (and fails
   * closed when it cannot), though answers are still cached for when it is turned off.
   */
  readThrough(on: boolean): void {
    this.#readThrough = on;
  }

  /** Forgets everything, revocation tombstones included: the registry is read afresh. */
  clear(): void {
    this.#cache.clear();
  }

  /** Drops what is known of a certificate, so the next lookup reads the registry. */
  forget(fingerprint: Fingerprint): void {
    this.#cache.delete(fingerprint);
  }

  /** Applies a registry event; runs before sessions are closed, so no CONNECT slips between. */
  apply(event: RegistryEvent): void {
    switch (event.type) {
      case 'certificate.created':
        this.#cache.delete(event.fingerprint);
        break;
      case 'certificate.status': {
        const current = this.#cache.peek(event.fingerprint);
        if (event.status === 'REVOKED' && current?.kind === 'registered') {
          // REVOKED is terminal: keep it as a tombstone with no expiry.
          this.#cache.set(event.fingerprint, { kind: 'registered', record: { ...current.record, certificateStatus: 'REVOKED' } }, { ttl: 0 });
        } else {
          this.#cache.delete(event.fingerprint);
        }
        break;
      }
      case 'device.status':
        this.#deviceEpoch++;
        for (const [fingerprint, standing] of this.#cache.entries()) {
          if (standing.kind === 'registered' && standing.record.deviceId === event.deviceId) this.#cache.delete(fingerprint);
        }
        break;
    }
  }
}
