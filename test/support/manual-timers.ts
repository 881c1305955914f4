// A clock that moves only when the test says so, with the simulator's Timers interface:
// scheduled tasks run in due order as time is stepped across them.
import { TimerHeap, type TimerHandle, type Timers } from '../../firmware-sim/timers.js';

export class ManualTimers implements Timers {
  readonly #heap = new TimerHeap();
  #now: number;

  constructor(start = Date.UTC(2030, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  at(at: number, task: () => void): TimerHandle {
    return this.#heap.push(at, task);
  }

  cancel(handle: TimerHandle): void {
    this.#heap.cancel(handle);
  }

  /** The next pending task's due time. */
  get next(): number | undefined {
    return this.#heap.peek();
  }

  /** Steps the clock by `ms`, running every task that comes due on the way (and any they schedule within it). */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const next = this.#heap.peek();
      if (next === undefined || next > end) break;
      this.#now = Math.max(this.#now, next);
      for (const task of this.#heap.takeDue(this.#now)) task();
    }
    this.#now = end;
  }

  /** Lets promise callbacks settle (a renewal's `then`), without moving the clock. */
  async settle(): Promise<void> {
    for (let i = 0; i < 5; i++) await Promise.resolve();
  }
}
