// One clock and one timer for a whole simulated fleet. Ten thousand devices each holding
// their own setTimeout for backoff and renewal would cost a Timeout object apiece and a
// crowded timer list; a single heap ordered by due time needs one node timer for all.

export interface Clock {
  /** Milliseconds since the Unix epoch, with sub-millisecond precision where available. */
  now(): number;
}

export interface TimerHandle {
  readonly at: number;
}

/** Schedules work at absolute times of its clock; what devices and renewal are given. */
export interface Timers extends Clock {
  /** Runs `task` once at `at` (or at once, if `at` has passed). */
  at(at: number, task: () => void): TimerHandle;
  cancel(handle: TimerHandle): void;
}

export const systemClock: Clock = { now: () => performance.timeOrigin + performance.now() };

interface Entry extends TimerHandle {
  readonly at: number;
  /** Insertion order, so tasks due at the same time run in the order they were scheduled. */
  readonly order: number;
  task: (() => void) | undefined;
}

/** A binary min-heap of entries by (at, order). Cancelled entries stay until they surface. */
export class TimerHeap {
  readonly #items: Entry[] = [];
  #order = 0;

  get size(): number {
    return this.#items.length;
  }

  push(at: number, task: () => void): Entry {
    const entry: Entry = { at, order: this.#order++, task };
    const items = this.#items;
    items.push(entry);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(entry, items[parent]!)) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = entry;
    return entry;
  }

  /** The entry's task will not run; the entry itself leaves when it reaches the top. */
  cancel(handle: TimerHandle): void {
    (handle as Entry).task = undefined;
  }

  /** The earliest live entry's due time, dropping cancelled entries on the way. */
  peek(): number | undefined {
    while (this.#items.length && this.#items[0]!.task === undefined) this.#pop();
    return this.#items[0]?.at;
  }

  /** Removes and returns the tasks due at or before `now`, in due order. */
  takeDue(now: number): (() => void)[] {
    const due: (() => void)[] = [];
    while (this.#items.length && this.#items[0]!.at <= now) {
      const entry = this.#pop();
      if (entry.task) due.push(entry.task);
      entry.task = undefined;
    }
    return due;
  }

  clear(): void {
    for (const entry of this.#items) entry.task = undefined;
    this.#items.length = 0;
  }

  #pop(): Entry {
    const items = this.#items;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= items.length) break;
        const right = left + 1;
        const child = right < items.length && before(items[right]!, items[left]!) ? right : left;
        if (!before(items[child]!, last)) break;
        items[i] = items[child]!;
        i = child;
      }
      items[i] = last;
    }
    return top;
  }
}

const before = (a: Entry, b: Entry) => a.at < b.at || (a.at === b.at && a.order < b.order);

/** setTimeout fires at once for delays above 2^31−1 ms (about 24.8 days); longer waits are taken in steps. */
const LONGEST_DELAY_MS = 2 ** 31 - 1;

/** Timers on the system clock, backed by one heap and one node timer. */
export class TimerQueue implements Timers {
  readonly #heap = new TimerHeap();
  #timer: NodeJS.Timeout | undefined;
  #armedFor: number | undefined;
  #stopped = false;

  constructor(private readonly clock: Clock = systemClock) {}

  now(): number {
    return this.clock.now();
  }

  at(at: number, task: () => void): TimerHandle {
    const entry = this.#heap.push(at, task);
    if (!this.#stopped && (this.#armedFor === undefined || at < this.#armedFor)) this.#arm();
    return entry;
  }

  cancel(handle: TimerHandle): void {
    this.#heap.cancel(handle);
  }

  /** Pending entries, cancelled ones included until they are reached. */
  get size(): number {
    return this.#heap.size;
  }

  /** Drops every pending task; nothing scheduled afterwards runs either. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = undefined;
    this.#heap.clear();
  }

  #arm(): void {
    clearTimeout(this.#timer);
    const next = this.#heap.peek();
    this.#armedFor = next;
    this.#timer = undefined;
    if (next === undefined) return;
    const delay = Math.min(LONGEST_DELAY_MS, Math.max(0, next - this.now()));
    this.#timer = setTimeout(this.#fire, delay);
  }

  readonly #fire = (): void => {
    this.#armedFor = undefined;
    for (const task of this.#heap.takeDue(this.now())) {
      if (this.#stopped) return;
      task();
    }
    if (!this.#stopped) this.#arm();
  };
}
