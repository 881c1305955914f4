// One ticker drives the telemetry of the whole fleet. Each device publishes `rate` readings
// a second, the devices' turns spread evenly over the second: the ticker wakes every few
// milliseconds and hands out the turns that have come due since, round robin.
import type { Clock } from './timers.js';

export interface Publisher {
  publishReading(): void;
}

export class TelemetryTicker {
  #timer: NodeJS.Timeout | undefined;
  #started = 0;
  #issued = 0;

  constructor(
    private readonly devices: readonly Publisher[],
    private readonly ratePerDevice: number,
    private readonly clock: Clock,
    private readonly tickMs = 20,
  ) {}

  /** Readings handed out so far. */
  get issued(): number {
    return this.#issued;
  }

  start(): void {
    if (this.#timer || this.devices.length === 0 || !(this.ratePerDevice > 0)) return;
    this.#started = this.clock.now();
    this.#issued = 0;
    this.#timer = setInterval(() => this.tick(), this.tickMs);
  }

  /** Hands out every turn due by now; called by the interval, and by tests directly. */
  tick(now = this.clock.now()): void {
    const n = this.devices.length;
    const due = Math.floor(((now - this.#started) * n * this.ratePerDevice) / 1000);
    for (; this.#issued < due; this.#issued++) this.devices[this.#issued % n]!.publishReading();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
