// A simulated fleet: the devices, and the one copy of everything they share — timers, the
// connection gate, the recorder, the policies, the issuance ports — plus the backend reader
// that receives their telemetry. Scenarios drive a fleet; they never reach into a device's
// connection.
import { ApiClient } from './api-client.js';
import { createClaimBatch, DEFAULT_CLAIM_RATE, type SimClaimBatch } from './claim-batch.js';
import { DEFAULT_BACKOFF, type BackoffPolicy, type Random } from './device/backoff.js';
import { ClaimFigures } from './device/claim.js';
import { FirmwareDevice, type DeviceEnvironment } from './device/firmware.js';
import { errorCode } from './error-code.js';
import { HttpsRenewer, MqttRenewer, OperatorCsrRenewer, OperatorEnroller, type EnrollmentChannel, type RenewalChannel, type Renewer } from './device/issuance.js';
import { DEFAULT_RENEWAL, type RenewalPolicy } from './device/renewal.js';
import { BoundedGate } from './gate.js';
import { LatencyHistogram } from './histogram.js';
import { TelemetryReader } from './reader.js';
import { Recorder } from './recorder.js';
import { inPool } from './stats.js';
import { TelemetryTicker } from './ticker.js';
import { TimerQueue } from './timers.js';

export interface FleetConfig {
  apiUrl: string;
  /** mqtts://host:port */
  mqttUrl: string;
  token: string;
  /** The fleet's CA bundle: trusted for the API and the broker, and sent by no one. */
  caPem: string;
  idPrefix: string;
  devices: number;
  qos: 0 | 1;
  /** Enrollments, and connection attempts, in flight at once. */
  concurrency: number;
  backoff?: BackoffPolicy;
  renewal?: RenewalPolicy;
  keepaliveSeconds?: number;
  connectTimeoutMs?: number;
  /** Local addresses to spread the devices' connections over (round robin); the OS picks when empty. */
  localAddresses?: readonly string[];
  random?: Random;
  /** How devices enroll: through the operator API (the default), or by claim over MQTT. */
  enrollVia?: EnrollmentChannel;
  /** By claim: the claim requests per second the batch is created to take (two per device). */
  claimRate?: number;
  /** How devices renew; several channels are dealt out to the devices in turn. Over MQTT by default. */
  renewVia?: readonly RenewalChannel[];
}

export const DEFAULT_RENEWAL_CHANNELS: readonly RenewalChannel[] = Object.freeze(['mqtt']);

export interface EnrollmentFigures {
  ok: number;
  failed: number;
  /** Failures by error code. */
  failures: Record<string, number>;
  perSecond: number;
  /** How long enrollment took, the claim batch's creation included. */
  durationS: number;
  latency: LatencyHistogram;
}

export interface DeliveryFigures {
  /** QoS of the telemetry. */
  qos: 0 | 1;
  /** Readings numbered by the devices. */
  published: number;
  /** Distinct readings the reader received. */
  received: number;
  /** QoS 1 readings published, not abandoned, and never received. */
  lost: number;
  duplicates: number;
  /** QoS 1 readings still unacknowledged in the outbox of a device that stopped for good. */
  abandoned: number;
  /** A few lost readings, to start an investigation from. */
  lostExamples: { deviceId: string; seq: number }[];
}

export interface MemorySample {
  rssBytes: number;
  heapUsedBytes: number;
  /** Whether a full garbage collection ran first (node --expose-gc). */
  collected: boolean;
}

export function memorySample(): MemorySample {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const usage = process.memoryUsage();
  return { rssBytes: usage.rss, heapUsedBytes: usage.heapUsed, collected: gc !== undefined };
}

export function deviceIds(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(6, '0')}`);
}

function brokerAddress(mqttUrl: string): { host: string; port: number } {
  const url = new URL(mqttUrl);
  if (url.protocol !== 'mqtts:') throw new Error(`the broker takes mutual TLS only: expected an mqtts:// URL, got ${mqttUrl}`);
  // URL keeps the brackets of an IPv6 literal; sockets want the bare address.
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 8883) };
}

export class SimFleet {
  readonly api: ApiClient;
  readonly timers = new TimerQueue();
  readonly recorder = new Recorder(this.timers);
  readonly gate: BoundedGate;
  readonly env: DeviceEnvironment;
  readonly broker: { host: string; port: number };
  /** Enrolled devices, in id order. */
  devices: FirmwareDevice[] = [];
  reader: TelemetryReader | undefined;
  /** The claim batch the fleet enrolled by, when it enrolls by claim. */
  claimBatch: SimClaimBatch | undefined;
  readonly claims = new ClaimFigures();
  readonly enrollVia: EnrollmentChannel;
  readonly renewVia: readonly RenewalChannel[];
  readonly #renewers: readonly Renewer[];
  #ticker: TelemetryTicker | undefined;
  #telemetrySince: number | undefined;
  #telemetryMs = 0;

  constructor(readonly config: FleetConfig) {
    this.api = new ApiClient({ baseUrl: config.apiUrl, ca: config.caPem, token: config.token });
    this.broker = brokerAddress(config.mqttUrl);
    this.gate = new BoundedGate(config.concurrency);
    this.enrollVia = config.enrollVia ?? 'api';
    this.renewVia = config.renewVia?.length ? [...new Set(config.renewVia)] : DEFAULT_RENEWAL_CHANNELS;
    const connectTimeoutMs = config.connectTimeoutMs ?? 20_000;
    const renewers: Record<RenewalChannel, () => Renewer> = {
      mqtt: () => new MqttRenewer(this.timers, connectTimeoutMs),
      https: () => new HttpsRenewer(this.api),
      api: () => new OperatorCsrRenewer(this.api),
    };
    this.#renewers = this.renewVia.map((channel) => renewers[channel]());
    this.env = {
      broker: this.broker,
      caPem: config.caPem,
      timers: this.timers,
      random: config.random ?? Math.random,
      backoff: config.backoff ?? DEFAULT_BACKOFF,
      renewal: config.renewal ?? DEFAULT_RENEWAL,
      // By claim, the enroller comes with the claim batch, made when enrollment starts.
      enroller: new OperatorEnroller(this.api),
      renewer: this.#renewers[0]!,
      gate: this.gate,
      observer: this.recorder,
      qos: config.qos,
      keepaliveSeconds: config.keepaliveSeconds ?? 60,
      connectTimeoutMs,
    };
  }

  /**
   * Every device makes its key and enrolls; the ones that fail are counted and left out. By
   * claim, the claim batch is created first, through the API, as the factory would.
   */
  async enroll(onProgress: (done: number) => void = () => undefined): Promise<EnrollmentFigures> {
    const started = this.timers.now();
    if (this.enrollVia === 'claim' && !this.claimBatch) {
      this.claimBatch = await createClaimBatch({
        api: this.api,
        prefix: this.config.idPrefix,
        requestsPerSecond: this.config.claimRate ?? DEFAULT_CLAIM_RATE,
        caPem: this.config.caPem,
        broker: this.broker,
        timers: this.timers,
        random: this.env.random,
        backoff: this.env.backoff,
        connectTimeoutMs: this.env.connectTimeoutMs,
        observer: this.claims,
      });
      this.env.enroller = this.claimBatch.enroller;
    }
    const ids = deviceIds(this.config.idPrefix, this.config.devices);
    const addresses = this.config.localAddresses ?? [];
    const enrolled: (FirmwareDevice | undefined)[] = new Array<FirmwareDevice | undefined>(ids.length);
    const failures: Record<string, number> = {};
    const latency = new LatencyHistogram();
    let done = 0;
    await inPool(ids, this.config.concurrency, async (id, i) => {
      const device = new FirmwareDevice(id, this.env, { localAddress: addresses.length ? addresses[i % addresses.length] : undefined, renewer: this.#renewers[i % this.#renewers.length] });
      const t0 = this.timers.now();
      try {
        await device.enroll();
        latency.record(this.timers.now() - t0);
        this.recorder.enrolled();
        enrolled[i] = device;
      } catch (error) {
        const key = errorCode(error);
        failures[key] = (failures[key] ?? 0) + 1;
      }
      onProgress(++done);
    });
    this.devices = enrolled.filter((d): d is FirmwareDevice => d !== undefined);
    const failed = ids.length - this.devices.length;
    const durationS = (this.timers.now() - started) / 1000;
    return { ok: this.devices.length, failed, failures, perSecond: this.devices.length / durationS, durationS, latency };
  }

  /** Enrolls and connects the backend reader of the fleet's telemetry: a backend service, registered through the operator API whatever way the devices enroll. */
  async startReader(qos: 0 | 1): Promise<TelemetryReader> {
    const reader = await TelemetryReader.enroll(this.api, new OperatorEnroller(this.api), `${this.config.idPrefix}-reader`, `${this.config.idPrefix}-readers`, this.config.caPem, this.timers);
    await reader.connect(this.broker, qos, this.env.connectTimeoutMs);
    this.reader = reader;
    return reader;
  }

  /** Every enrolled device starts connecting (through the gate, so at the concurrency set). */
  startAll(): void {
    for (const device of this.devices) device.start();
  }

  get online(): number {
    let n = 0;
    for (const device of this.devices) if (device.state === 'online') n++;
    return n;
  }

  get stopped(): number {
    let n = 0;
    for (const device of this.devices) if (device.state === 'stopped') n++;
    return n;
  }

  /**
   * Polls `done` every 100 ms (sampling the online count for the time series) until it
   * holds or `timeoutMs` passes; `onPoll` feeds a progress display. Resolves whether it held.
   */
  async until(done: () => boolean, timeoutMs: number, onPoll: () => void = () => undefined): Promise<boolean> {
    const deadline = this.timers.now() + timeoutMs;
    for (;;) {
      this.recorder.sampleOnline(this.online);
      onPoll();
      if (done()) return true;
      if (this.timers.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Waits `ms`, sampling as `until` does. */
  async hold(ms: number, onPoll?: () => void): Promise<void> {
    await this.until(() => false, ms, onPoll);
  }

  startTelemetry(ratePerDevice: number): void {
    this.stopTelemetry();
    this.#ticker = new TelemetryTicker(this.devices, ratePerDevice, this.timers);
    this.#ticker.start();
    this.#telemetrySince = this.timers.now();
  }

  stopTelemetry(): void {
    this.#ticker?.stop();
    this.#ticker = undefined;
    if (this.#telemetrySince !== undefined) this.#telemetryMs += this.timers.now() - this.#telemetrySince;
    this.#telemetrySince = undefined;
  }

  /** How long telemetry ran, in all. */
  get telemetryMs(): number {
    return this.#telemetryMs + (this.#telemetrySince !== undefined ? this.timers.now() - this.#telemetrySince : 0);
  }

  /**
   * After telemetry stops: waits until no live device holds an unacknowledged reading and the
   * reader has everything that was acknowledged, or `timeoutMs` passes.
   */
  async drain(timeoutMs: number, onPoll?: () => void): Promise<boolean> {
    const expected = () => {
      let acknowledged = 0;
      for (const d of this.devices) {
        if (d.state !== 'stopped' && d.outbox.size > 0) return Infinity;
        acknowledged += d.outbox.last - d.outbox.size;
      }
      return acknowledged;
    };
    if (!this.reader || this.config.qos === 0) return this.until(() => expected() !== Infinity, timeoutMs, onPoll);
    const reader = this.reader;
    return this.until(() => reader.ledger.totals.received >= expected(), timeoutMs, onPoll);
  }

  /** What the reader received of what the devices published. */
  delivery(): DeliveryFigures | undefined {
    const reader = this.reader;
    if (!reader) return undefined;
    const figures: DeliveryFigures = { qos: this.config.qos, published: 0, received: 0, lost: 0, duplicates: 0, abandoned: 0, lostExamples: [] };
    for (const device of this.devices) {
      const { received, duplicates } = reader.ledger.of(device.id);
      figures.published += device.outbox.last;
      figures.received += received;
      figures.duplicates += duplicates;
      if (this.config.qos === 0) continue;
      // A device that stopped for good cannot deliver what it still holds; that is not loss.
      const abandoned = device.state === 'stopped' ? new Set([...device.outbox.pending()].map(([seq]) => seq)) : undefined;
      for (const seq of reader.ledger.missing(device.id, device.outbox.last)) {
        if (abandoned?.has(seq)) {
          figures.abandoned++;
        } else {
          figures.lost++;
          if (figures.lostExamples.length < 10) figures.lostExamples.push({ deviceId: device.id, seq });
        }
      }
    }
    return figures;
  }

  async shutdown(): Promise<void> {
    this.stopTelemetry();
    await Promise.all(this.devices.map((d) => d.shutdown()));
    await this.reader?.close();
    this.timers.stop();
  }
}
