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

/** What a spoiled read hands its readers: ask again. */
const SPOILED = Symbol('spoiled');

/**
 * A registry read in flight. An event about what it reads spoils it: its readers stop
 * waiting at once and ask again, and its answer, when it comes, is not cached.
 */
interface Lookup {
  promise: Promise<Standing | typeof SPOILED>;
  spoil(): void;
}

export class VerdictCache {
  readonly #cache: LRUCache<Fingerprint, Standing>;
  /** One read per fingerprint at a time, shared by every CONNECT that needs it. */
  readonly #inFlight = new Map<Fingerprint, Lookup>();
  /** Set while events may be missed (a cluster node cut off from its bus): every lookup reads the registry. */
  #readThrough = false;

  constructor(
    private readonly source: AdmissionSource,
    private readonly options: VerdictCacheOptions,
  ) {
    // Never serve a stale answer. (lru-cache's own fetch() would also abort a read that an
    // event overtakes, but at the price of an AbortController per read: the lookups in flight
    // below do the same for less.)
    this.#cache = new LRUCache<Fingerprint, Standing>({ max: options.maxEntries, ttl: options.ttlMs, allowStale: false });
  }

  async standing(fingerprint: Fingerprint): Promise<Standing> {
    // An event about this certificate, or about any device, spoils the reads in flight: then
    // the event's tombstone is the answer, or else a second read, made after the event's
    // commit. Events are published after they are durable, so the second read sees them.
    for (let attempt = 0; attempt < 3; attempt++) {
      if (!this.#readThrough) {
        const cached = this.#cache.get(fingerprint);
        if (cached) return cached;
      }
      const standing = await (this.#inFlight.get(fingerprint) ?? this.#read(fingerprint)).promise;
      if (standing !== SPOILED) return standing;
    }
    throw new RegistryUnavailableError('registry lookup kept being overtaken by status changes');
  }

  #read(fingerprint: Fingerprint): Lookup {
    let settle!: (standing: Standing | typeof SPOILED) => void;
    let fail!: (error: unknown) => void;
    let spoiled = false;
    const lookup: Lookup = {
      promise: new Promise((resolve, reject) => ((settle = resolve), (fail = reject))),
      spoil: () => {
        spoiled = true;
        settle(SPOILED);
      },
    };
    this.#inFlight.set(fingerprint, lookup);
    const done = () => {
      if (this.#inFlight.get(fingerprint) === lookup) this.#inFlight.delete(fingerprint);
    };
    (async () => this.source.admissionRecord(fingerprint))().then(
      (record) => {
        done();
        if (spoiled) return;
        const standing: Standing = record ? { kind: 'registered', record } : { kind: 'unregistered' };
        // A miss is remembered only briefly: enrollment follows.
        this.#cache.set(fingerprint, standing, record ? undefined : { ttl: this.options.unregisteredTtlMs });
        settle(standing);
      },
      (cause: unknown) => {
        done();
        fail(new RegistryUnavailableError('registry lookup failed', { cause }));
      },
    );
    return lookup;
  }

  #spoil(fingerprint: Fingerprint): void {
    const lookup = this.#inFlight.get(fingerprint);
    if (!lookup) return;
    this.#inFlight.delete(fingerprint);
    lookup.spoil();
  }

  /** A device event cannot name the reads it spoils: it spoils them all. */
  #spoilAll(): void {
    const lookups = [...this.#inFlight.values()];
    this.#inFlight.clear();
    for (const lookup of lookups) lookup.spoil();
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
    this.#spoilAll();
  }

  /** Drops what is known of a certificate, so the next lookup reads the registry. */
  forget(fingerprint: Fingerprint): void {
    this.#cache.delete(fingerprint);
    this.#spoil(fingerprint);
  }

  /** Applies a registry event; runs before sessions are closed, so no CONNECT slips between. */
  apply(event: RegistryEvent): void {
    switch (event.type) {
      case 'certificate.created':
        this.forget(event.fingerprint);
        break;
      case 'certificate.status': {
        const current = this.#cache.peek(event.fingerprint);
        this.#spoil(event.fingerprint);
        if (event.status === 'REVOKED' && current?.kind === 'registered') {
          // REVOKED is terminal: keep it as a tombstone with no expiry.
          this.#cache.set(event.fingerprint, { kind: 'registered', record: { ...current.record, certificateStatus: 'REVOKED' } }, { ttl: 0 });
        } else {
          this.#cache.delete(event.fingerprint);
        }
        break;
      }
      case 'device.status':
        this.#spoilAll();
        for (const [fingerprint, standing] of this.#cache.entries()) {
          if (standing.kind === 'registered' && standing.record.deviceId === event.deviceId) this.#cache.delete(fingerprint);
        }
        break;
    }
  }
}
