// Abuse control at CONNECT: a client id (default once a second) and an address (more, for
// devices behind one NAT) may only connect so often; a client id that keeps hitting the
// limit is banned for a while, and the ban lifts by itself. In a cluster a ban (and its early
// lifting) is shared with the other nodes (broker/cluster-limits.ts); throttling stays per node.
import { LRUCache } from 'lru-cache';
import { TokenBucket, type Rate } from './limits.js';
import type { Ban } from '../registry/model.js';

export type { Ban };

export interface AbuseLimits {
  perClientId: Rate;
  perAddress: Rate;
  /** Throttled this many times within `windowMs` → banned for `durationMs`. */
  ban: { afterThrottled: number; windowMs: number; durationMs: number };
}

export type ConnectAllowance = { ok: true } | { ok: false; reason: 'throttled' | 'banned'; detail: string };

interface Strikes {
  count: number;
  since: number;
}

/** A ban as another node hears of it: times are per process, so it carries what is left of it. */
export interface SharedBan {
  clientId: string;
  identity: string;
  remainingMs: number;
}

/** Where this node's bans and lifts go, to reach the other nodes. */
export interface BanAnnouncer {
  announceBan(ban: SharedBan): void;
  announceUnban(clientId: string): void;
}

const TRACKED = 100_000;

export class AbuseControl {
  readonly #clientIds: LRUCache<string, TokenBucket>;
  readonly #addresses: LRUCache<string, TokenBucket>;
  readonly #strikes: LRUCache<string, Strikes>;
  readonly #bans = new Map<string, Ban>();
  #announcer?: BanAnnouncer;

  constructor(
    private readonly limits: AbuseLimits,
    private readonly now: () => number,
  ) {
    // A bucket idle long enough to have refilled carries no information: let it go.
    const idle = (rate: Rate) => Math.ceil((rate.burst / rate.ratePerSecond) * 1000) + 1000;
    this.#clientIds = new LRUCache({ max: TRACKED, ttl: idle(limits.perClientId), ttlAutopurge: false });
    this.#addresses = new LRUCache({ max: TRACKED, ttl: idle(limits.perAddress), ttlAutopurge: false });
    this.#strikes = new LRUCache({ max: TRACKED, ttl: limits.ban.windowMs });
  }

  /**
   * Counts one CONNECT from `clientId` at `address` (an IP, no port), with the certificate of
   * `fingerprint` if one was presented. The client id's allowance and its bans belong to that
   * certificate (or, without one, to that address), so nobody can exhaust them for a device by
   * connecting under its client id without its certificate.
   */
  checkConnect(clientId: string, address: string, fingerprint?: string): ConnectAllowance {
    const now = this.now();
    const identity = fingerprint ?? `address ${address}`;
    const key = `${clientId} ${identity}`;
    const ban = this.#bans.get(key);
    if (ban && ban.until > now) return { ok: false, reason: 'banned', detail: `for ${Math.ceil((ban.until - now) / 1000)} s more` };
    if (ban) this.#bans.delete(key);

    if (!this.#bucket(this.#addresses, address, this.limits.perAddress, now).tryTake(now)) return this.#strike(key, clientId, identity, now, `address ${address} over ${this.limits.perAddress.ratePerSecond}/s`);
    if (!this.#bucket(this.#clientIds, key, this.limits.perClientId, now).tryTake(now)) return this.#strike(key, clientId, identity, now, `client id over ${this.limits.perClientId.ratePerSecond}/s`);
    return { ok: true };
  }

  bans(): Ban[] {
    const now = this.now();
    return [...this.#bans.values()].filter((b) => b.until > now);
  }

  /** Bans decided or lifted here are told through `announcer` from now on. */
  share(announcer: BanAnnouncer): void {
    this.#announcer = announcer;
  }

  /** A ban another node decided: it holds here too, for what is left of it. */
  adopt(ban: SharedBan): void {
    if (!(ban.remainingMs > 0)) return;
    const now = this.now();
    this.#ban(`${ban.clientId} ${ban.identity}`, { clientId: ban.clientId, identity: ban.identity, since: now, until: now + ban.remainingMs }, now);
  }

  /** Lifts every ban of a client id early, on every node; returns how many there were here. */
  unban(clientId: string): number {
    this.#announcer?.announceUnban(clientId);
    return this.lift(clientId);
  }

  /** Lifts every ban of a client id early on this node only (another node lifted them). */
  lift(clientId: string): number {
    let lifted = 0;
    for (const [key, ban] of this.#bans) {
      if (ban.clientId !== clientId) continue;
      this.#bans.delete(key);
      this.#strikes.delete(key);
      lifted++;
    }
    return lifted;
  }

  #bucket(cache: LRUCache<string, TokenBucket>, key: string, rate: Rate, now: number): TokenBucket {
    let bucket = cache.get(key);
    if (!bucket) cache.set(key, (bucket = new TokenBucket(rate, now)));
    return bucket;
  }

  #ban(key: string, ban: Ban, now: number): void {
    if (this.#bans.size >= TRACKED) for (const [k, old] of this.#bans) if (old.until <= now) this.#bans.delete(k);
    this.#bans.set(key, ban);
  }

  #strike(key: string, clientId: string, identity: string, now: number, detail: string): ConnectAllowance {
    const strikes = this.#strikes.get(key) ?? { count: 0, since: now };
    strikes.count++;
    this.#strikes.set(key, strikes, { noUpdateTTL: strikes.count > 1 });
    const { afterThrottled, durationMs } = this.limits.ban;
    if (strikes.count >= afterThrottled) {
      this.#strikes.delete(key);
      this.#ban(key, { clientId, identity, since: now, until: now + durationMs }, now);
      this.#announcer?.announceBan({ clientId, identity, remainingMs: durationMs });
      return { ok: false, reason: 'banned', detail: `${strikes.count} throttled CONNECTs since ${Math.round((now - strikes.since) / 1000)} s ago; banned for ${durationMs / 1000} s` };
    }
    return { ok: false, reason: 'throttled', detail };
  }
}
