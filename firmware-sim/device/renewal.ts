// When a device renews its certificate: at two thirds of its lifetime, moved by a random
// jitter so a fleet enrolled in one afternoon does not renew in one minute, and never in
// the past. Scheduled on injected timers, so tests step a fake clock across the threshold.
import type { Random } from './backoff.js';
import { Backoff, type BackoffPolicy } from './backoff.js';
import type { TimerHandle, Timers } from '../timers.js';

/** A certificate's validity, in ms since the epoch. */
export interface Validity {
  notBefore: number;
  notAfter: number;
}

export interface RenewalPolicy {
  /** The point of the lifetime to renew at, as a fraction: 2/3. */
  at: number;
  /** The renewal moves up to ± this fraction of the lifetime, uniformly. */
  jitter: number;
  /** How a failed renewal is retried (the certificate is still good meanwhile). */
  retry: BackoffPolicy;
}

export const DEFAULT_RENEWAL: Readonly<RenewalPolicy> = Object.freeze({ at: 2 / 3, jitter: 0.05, retry: Object.freeze({ baseMs: 30_000, capMs: 60 * 60_000 }) });

/** The time to renew a certificate with this validity, seen at `now`. */
export function renewalTime(validity: Validity, now: number, policy: Pick<RenewalPolicy, 'at' | 'jitter'>, random: Random = Math.random): number {
  const lifetime = validity.notAfter - validity.notBefore;
  const target = validity.notBefore + policy.at * lifetime + (2 * random() - 1) * policy.jitter * lifetime;
  return Math.max(now, target);
}

/**
 * Keeps one renewal pending for a device. `renew` obtains and switches to new credentials and
 * returns their validity; the next renewal is then scheduled from it. A failure is retried
 * with backoff.
 */
export class RenewalSchedule {
  #handle: TimerHandle | undefined;
  #running = false;
  #stopped = false;
  readonly #retry: Backoff;

  constructor(
    private readonly timers: Timers,
    private readonly policy: RenewalPolicy,
    private readonly renew: () => Promise<Validity>,
    private readonly random: Random = Math.random,
    private readonly onFailure: (error: unknown) => void = () => undefined,
  ) {
    this.#retry = new Backoff(policy.retry, random);
  }

  /** When the pending renewal is due, if one is. */
  get dueAt(): number | undefined {
    return this.#handle?.at;
  }

  /** Whether a renewal is under way now. */
  get running(): boolean {
    return this.#running;
  }

  /** Schedules the renewal of a certificate with this validity, replacing any pending one. */
  schedule(validity: Validity): void {
    this.#set(renewalTime(validity, this.timers.now(), this.policy, this.random));
  }

  /** Renews at once (a rotation ordered from outside), then goes on as scheduled. */
  now(): void {
    this.#set(this.timers.now());
  }

  /** No renewal from now on, including after one that is under way. */
  stop(): void {
    this.#stopped = true;
    this.#cancel();
  }

  #cancel(): void {
    if (this.#handle) this.timers.cancel(this.#handle);
    this.#handle = undefined;
  }

  #set(at: number): void {
    this.#cancel();
    if (!this.#stopped) this.#handle = this.timers.at(at, this.#fire);
  }

  readonly #fire = (): void => {
    this.#handle = undefined;
    if (this.#running) return;
    this.#running = true;
    this.renew().then(
      (validity) => {
        this.#running = false;
        this.#retry.reset();
        // A renewal ordered while this one ran has been served by it.
        this.schedule(validity);
      },
      (error: unknown) => {
        this.#running = false;
        this.onFailure(error);
        if (this.#handle === undefined) this.#set(this.timers.now() + this.#retry.next());
      },
    );
  };
}
