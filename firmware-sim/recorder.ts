// What happened during a run, gathered from every device through one observer: counts per
// one-second bucket over time, latency histograms, refusals by reason. Its size depends on
// the run's length, never on how many messages flowed.
import type { DeviceObserver, FirmwareDevice } from './device/firmware.js';
import type { RenewalChannel } from './device/issuance.js';
import { errorCode } from './error-code.js';
import { LatencyHistogram } from './histogram.js';
import type { Clock } from './timers.js';

export const BUCKET_MS = 1000;

export type SeriesName = 'enrolled' | 'attempts' | 'connects' | 'connectFailures' | 'drops' | 'published' | 'completed' | 'online';

/** Renewals over one channel. */
export interface ChannelRenewals {
  renewed: number;
  failed: number;
  /** Failures by code: the API's or the broker's, or what went wrong on the way. */
  failures: Map<string, number>;
  latency: LatencyHistogram;
}

export interface Mark {
  /** Seconds since the run started. */
  at: number;
  label: string;
}

export class Recorder implements DeviceObserver {
  readonly startedAt: number;
  readonly connectLatency = new LatencyHistogram();
  readonly completionLatency = new LatencyHistogram();
  readonly renewalLatency = new LatencyHistogram();
  readonly refusals = new Map<string, number>();
  readonly stoppedBy = new Map<string, number>();
  readonly totals = { attempts: 0, connects: 0, reconnects: 0, connectFailures: 0, drops: 0, published: 0, completed: 0, renewals: 0, renewalFailures: 0, commands: 0 };
  readonly series: Record<SeriesName, number[]> = { enrolled: [], attempts: [], connects: [], connectFailures: [], drops: [], published: [], completed: [], online: [] };
  readonly renewalsVia = new Map<RenewalChannel, ChannelRenewals>();
  readonly marks: Mark[] = [];
  readonly #dropListeners: ((device: FirmwareDevice, at: number) => void)[] = [];

  constructor(private readonly clock: Clock) {
    this.startedAt = clock.now();
  }

  /** Seconds since the start, for marks and elapsed times. */
  elapsedSeconds(at = this.clock.now()): number {
    return (at - this.startedAt) / 1000;
  }

  mark(label: string): void {
    this.marks.push({ at: Math.round(this.elapsedSeconds() * 10) / 10, label });
  }

  /** The number of devices online now, as one point of the `online` series. */
  sampleOnline(count: number): void {
    const bucket = this.#bucket();
    const series = this.series.online;
    while (series.length <= bucket) series.push(series.length ? series[series.length - 1]! : 0);
    series[bucket] = count;
  }

  onDrop(listener: (device: FirmwareDevice, at: number) => void): () => void {
    this.#dropListeners.push(listener);
    return () => this.#dropListeners.splice(this.#dropListeners.indexOf(listener), 1);
  }

  /** A device enrolled (through the API or by claim). */
  enrolled(): void {
    this.#count('enrolled');
  }

  attempt(): void {
    this.totals.attempts++;
    this.#count('attempts');
  }

  connected(_device: FirmwareDevice, latencyMs: number, reconnect: boolean): void {
    this.totals.connects++;
    if (reconnect) this.totals.reconnects++;
    this.connectLatency.record(latencyMs);
    this.#count('connects');
  }

  connectFailed(_device: FirmwareDevice, reason: string): void {
    this.totals.connectFailures++;
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
    this.#count('connectFailures');
  }

  dropped(device: FirmwareDevice, at: number): void {
    this.totals.drops++;
    this.#count('drops');
    for (const listener of this.#dropListeners) listener(device, at);
  }

  stopped(_device: FirmwareDevice, reason: string): void {
    this.stoppedBy.set(reason, (this.stoppedBy.get(reason) ?? 0) + 1);
  }

  published(): void {
    this.totals.published++;
    this.#count('published');
  }

  completed(_device: FirmwareDevice, latencyMs: number): void {
    this.totals.completed++;
    this.completionLatency.record(latencyMs);
    this.#count('completed');
  }

  renewed(_device: FirmwareDevice, channel: RenewalChannel, latencyMs: number): void {
    this.totals.renewals++;
    this.renewalLatency.record(latencyMs);
    const via = this.#renewalsVia(channel);
    via.renewed++;
    via.latency.record(latencyMs);
  }

  renewalFailed(_device: FirmwareDevice, channel: RenewalChannel, error: unknown): void {
    this.totals.renewalFailures++;
    const key = errorCode(error);
    const via = this.#renewalsVia(channel);
    via.failed++;
    via.failures.set(key, (via.failures.get(key) ?? 0) + 1);
  }

  #renewalsVia(channel: RenewalChannel): ChannelRenewals {
    let via = this.renewalsVia.get(channel);
    if (!via) this.renewalsVia.set(channel, (via = { renewed: 0, failed: 0, failures: new Map(), latency: new LatencyHistogram() }));
    return via;
  }

  command(): void {
    this.totals.commands++;
  }

  #bucket(): number {
    return Math.max(0, Math.floor((this.clock.now() - this.startedAt) / BUCKET_MS));
  }

  #count(name: SeriesName): void {
    const bucket = this.#bucket();
    const series = this.series[name];
    while (series.length <= bucket) series.push(0);
    series[bucket]!++;
  }
}
