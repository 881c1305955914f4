// Pacing requests to a rate limit the service enforces, so a fleet does not learn the limit
// by being refused. A token bucket that lends ahead: each request reserves the next token,
// and is told how long to wait until that token exists — the k-th request past the burst
// waits k / rate. Waiting callers therefore go out evenly spaced, in the order they asked.
import type { Clock, Timers } from './timers.js';

export interface Rate {
  perSecond: number;
  burst: number;
}

export class Pacer {
  /** Tokens available after the last reservation; negative: reserved ahead of the refill. */
  #tokens: number;
  #at: number;

  constructor(
    readonly rate: Readonly<Rate>,
    private readonly clock: Clock,
  ) {
    if (!(rate.perSecond > 0) || !(rate.burst >= 1)) throw new RangeError(`a pace needs a positive rate and a burst of at least 1, got ${rate.perSecond}/s, burst ${rate.burst}`);
    this.#tokens = rate.burst;
    this.#at = clock.now();
  }

  /** Reserves one request's turn; returns how long to wait before sending it, in ms (0: now). */
  reserve(): number {
    const now = this.clock.now();
    this.#tokens = Math.min(this.rate.burst, this.#tokens + (Math.max(0, now - this.#at) * this.rate.perSecond) / 1000);
    this.#at = Math.max(this.#at, now);
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : (-this.#tokens * 1000) / this.rate.perSecond;
  }

  /** Waits for one request's turn on `timers`; resolves with how long it waited. */
  async take(timers: Timers): Promise<number> {
    const wait = this.reserve();
    if (wait > 0) await new Promise<void>((resolve) => timers.at(timers.now() + wait, resolve));
    return wait;
  }
}

/**
 * The limit a simulated claim batch is created with, and the pace its devices keep: the same
 * rate, with half the batch's burst. Requests reach the broker later than they leave, and
 * not all equally late; the other half of the burst absorbs that spread (up to half a
 * second at the default burst of one second's requests), so paced requests are not refused.
 */
export function claimLimits(requestsPerSecond: number): { batch: Rate; pace: Rate } {
  const burst = Math.max(2, Math.ceil(requestsPerSecond));
  return { batch: { perSecond: requestsPerSecond, burst }, pace: { perSecond: requestsPerSecond, burst: Math.floor(burst / 2) } };
}
