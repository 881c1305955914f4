// Exponential backoff with full jitter: the n-th retry waits a uniform random time in
// [0, min(cap, base·2^n)). Spreading retries over the whole window, rather than around its
// middle, is what keeps a fleet that lost its broker at once from coming back at once
// ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015).

export interface BackoffPolicy {
  /** The window of the first retry. */
  baseMs: number;
  /** The widest window, however many retries came before. */
  capMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffPolicy> = Object.freeze({ baseMs: 500, capMs: 30_000 });

/** A source of uniform numbers in [0, 1), Math.random by default; tests pass their own. */
export type Random = () => number;

/** The upper bound of the wait before retry number `attempt` (0 for the first). */
export function backoffWindow(policy: BackoffPolicy, attempt: number): number {
  // 2 ** attempt grows past any cap quickly; Math.min also handles Infinity.
  return Math.min(policy.capMs, policy.baseMs * 2 ** attempt);
}

/** One device's retry state: how many failures in a row, and how long to wait next. */
export class Backoff {
  #failures = 0;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: Random = Math.random,
  ) {
    if (!(policy.baseMs > 0) || !(policy.capMs >= policy.baseMs)) throw new RangeError(`backoff needs 0 < base ≤ cap, got base ${policy.baseMs} ms, cap ${policy.capMs} ms`);
  }

  /** Failures since the last success. */
  get failures(): number {
    return this.#failures;
  }

  /** Counts a failure and returns the wait before the next attempt, in ms. */
  next(): number {
    const window = backoffWindow(this.policy, this.#failures);
    this.#failures++;
    return this.random() * window;
  }

  /** A success: the next failure starts again from the base window. */
  reset(): void {
    this.#failures = 0;
  }
}
