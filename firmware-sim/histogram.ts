// Latency distributions of constant size. A fleet publishing for minutes acknowledges
// millions of messages; keeping every sample would make the simulator's memory grow with
// the run, so samples fall into logarithmic buckets (each 2^(1/8) ≈ 9 % wider than the
// last) and percentiles are read back within half a bucket.

const STEPS_PER_DOUBLING = 8;
/** The lower edge of bucket 0; anything below lands in it. */
const SMALLEST_MS = 0.01;
/** 0.01 ms · 2^(256/8) ≈ 12 hours: past anything a run measures. */
const BUCKETS = 32 * STEPS_PER_DOUBLING;

export interface Summary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface HistogramBucket {
  /** Lower and upper edge, ms. */
  from: number;
  to: number;
  count: number;
}

export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #sum = 0;
  #min = Infinity;
  #max = -Infinity;

  record(ms: number): void {
    if (!Number.isFinite(ms)) return;
    const value = Math.max(0, ms);
    this.#counts[bucketOf(value)]!++;
    this.#count++;
    this.#sum += value;
    if (value < this.#min) this.#min = value;
    if (value > this.#max) this.#max = value;
  }

  get count(): number {
    return this.#count;
  }

  /** The value below which `p` percent of samples fall, clamped to the observed range. */
  percentile(p: number): number {
    if (this.#count === 0) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return Math.min(this.#max, Math.max(this.#min, Math.sqrt(lowerEdge(i) * lowerEdge(i + 1))));
    }
    return this.#max;
  }

  summary(): Summary {
    if (this.#count === 0) return { count: 0, min: NaN, mean: NaN, p50: NaN, p90: NaN, p99: NaN, max: NaN };
    return { count: this.#count, min: this.#min, mean: this.#sum / this.#count, p50: this.percentile(50), p90: this.percentile(90), p99: this.percentile(99), max: this.#max };
  }

  /**
   * The occupied buckets, from the first to the last non-empty one, merged `merge` at a time
   * (a chart of 4 merged buckets has bars 2^(1/2) wide).
   */
  buckets(merge = 1): HistogramBucket[] {
    let first = this.#counts.findIndex((c) => c > 0);
    if (first < 0) return [];
    let last = BUCKETS - 1;
    while (this.#counts[last] === 0) last--;
    first -= first % merge;
    const out: HistogramBucket[] = [];
    for (let i = first; i <= last; i += merge) {
      let count = 0;
      for (let j = i; j < i + merge && j < BUCKETS; j++) count += this.#counts[j]!;
      out.push({ from: lowerEdge(i), to: lowerEdge(Math.min(BUCKETS, i + merge)), count });
    }
    return out;
  }
}

function lowerEdge(bucket: number): number {
  return bucket === 0 ? 0 : SMALLEST_MS * 2 ** (bucket / STEPS_PER_DOUBLING);
}

function bucketOf(ms: number): number {
  if (ms < SMALLEST_MS * 2 ** (1 / STEPS_PER_DOUBLING)) return 0;
  return Math.min(BUCKETS - 1, Math.floor(Math.log2(ms / SMALLEST_MS) * STEPS_PER_DOUBLING));
}
