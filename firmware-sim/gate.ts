// Connection attempts in flight, bounded for the whole fleet. A device that wants to dial
// queues here and is dialled when a slot frees; one that no longer wants to by then (it
// stopped, or was shut down) is skipped.
import type { ConnectGate, Dialer } from './device/firmware.js';

export class BoundedGate implements ConnectGate {
  #inFlight = 0;
  #queue: Dialer[] = [];
  #head = 0;
  #pumping = false;

  constructor(readonly limit: number) {
    if (!(limit >= 1)) throw new RangeError(`the gate needs at least one slot, got ${limit}`);
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get waiting(): number {
    return this.#queue.length - this.#head;
  }

  enter(device: Dialer): void {
    this.#queue.push(device);
    this.#pump();
  }

  leave(): void {
    this.#inFlight--;
    this.#pump();
  }

  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#inFlight < this.limit && this.#head < this.#queue.length) {
        const device = this.#queue[this.#head++]!;
        if (!device.wantsDial) continue;
        this.#inFlight++;
        device.dial();
      }
      // Drop the consumed head now and then, so the queue does not grow for the whole run.
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
    } finally {
      this.#pumping = false;
    }
  }
}
