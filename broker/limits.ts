// Per-device traffic limits. Publishing is paced, not dropped: the broker waits before
// taking the next packet, TCP pushes back on the device, and nothing is lost. Only a device
// that keeps a long backlog regardless is cut off.

export interface PublishLimits {
  /** Sustained publishes per second. */
  ratePerSecond: number;
  /** Publishes allowed in a burst above the rate. */
  burst: number;
  /** A device this far behind its allowance is disconnected. */
  maxBacklogMs: number;
}

export interface Rate {
  ratePerSecond: number;
  burst: number;
}

/** A token bucket. Times are milliseconds from any monotonic origin. */
export class TokenBucket {
  #tokens: number;
  #last: number;

  constructor(
    private readonly rate: Rate,
    now: number,
  ) {
    this.#tokens = rate.burst;
    this.#last = now;
  }

  #refill(now: number): void {
    this.#tokens = Math.min(this.rate.burst, this.#tokens + ((now - this.#last) * this.rate.ratePerSecond) / 1000);
    this.#last = now;
  }

  /** Takes one token, going into debt if need be; returns the wait in ms until it is covered (0: at once). */
  take(now: number): number {
    this.#refill(now);
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens * 1000) / this.rate.ratePerSecond);
  }

  /** Takes one token if there is one; never goes into debt. */
  tryTake(now: number): boolean {
    this.#refill(now);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/** Pacing of one device's publishes: a token bucket that answers with how long to wait. */
export class PublishPacer extends TokenBucket {}

/**
 * Follows the MQTT fixed headers in the bytes a connection delivers, without buffering,
 * and reports the first packet whose announced length exceeds `maxBytes` (or whose length
 * field is malformed) before the parser starts collecting it.
 */
export class PacketLengthWatch {
  /** Bytes of the current packet's body still to skip. */
  #skip = 0;
  /** Inside a fixed header: -1 before the type byte, else how many length bytes were read. */
  #lengthBytes = -1;
  #length = 0;
  #multiplier = 1;

  constructor(private readonly maxBytes: number) {}

  /** Returns a problem, or undefined while the stream stays within bounds. */
  scan(chunk: Buffer): { kind: 'too_large'; announced: number } | { kind: 'malformed' } | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.#skip > 0) {
        const step = Math.min(this.#skip, chunk.length - i);
        this.#skip -= step;
        i += step;
        continue;
      }
      if (this.#lengthBytes === -1) {
        // the type-and-flags byte
        this.#lengthBytes = 0;
        this.#length = 0;
        this.#multiplier = 1;
        i += 1;
        continue;
      }
      // [MQTT-2.2.3] Remaining Length: up to four bytes, seven bits each, low bits first.
      const byte = chunk[i]!;
      i += 1;
      this.#length += (byte & 0x7f) * this.#multiplier;
      this.#multiplier *= 128;
      this.#lengthBytes += 1;
      if (byte & 0x80) {
        if (this.#lengthBytes === 4) return { kind: 'malformed' };
        continue;
      }
      if (this.#length > this.maxBytes) return { kind: 'too_large', announced: this.#length };
      this.#skip = this.#length;
      this.#lengthBytes = -1;
    }
    return undefined;
  }
}
