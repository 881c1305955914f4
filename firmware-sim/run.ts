// A scenario run, start to end: enroll the fleet (and the telemetry reader when the scenario
// publishes), connect every device, measure the simulator's own memory at full strength,
// hand over to the scenario, and gather everything into one report.
import type { ClaimStep } from './device/claim.js';
import type { EnrollmentChannel, RenewalChannel } from './device/issuance.js';
import { memorySample, SimFleet, type EnrollmentFigures, type FleetConfig, type MemorySample } from './fleet.js';
import type { HistogramBucket, Summary } from './histogram.js';
import type { Rate } from './pacer.js';
import type { Mark, Recorder, SeriesName } from './recorder.js';
import { BUCKET_MS } from './recorder.js';
import { criterion, type Criterion, type ProgressSink, type Scenario, type ScenarioName, type ScenarioOptions } from './scenarios/scenario.js';

export { deviceIds } from './fleet.js';

export interface RunReport {
  scenario: ScenarioName;
  passed: boolean;
  startedAt: string;
  finishedAt: string;
  durationS: number;
  options: ScenarioOptions & { concurrency: number; idPrefix: string; apiUrl: string; mqttUrl: string };
  criteria: Criterion[];
  devices: { requested: number; enrolled: number; onlineAtEnd: number; stoppedBy: Record<string, number> };
  enroll: {
    /** How the devices enrolled: through the operator API, or by claim over MQTT. */
    via: EnrollmentChannel;
    ok: number;
    failed: number;
    failures: Record<string, number>;
    /** Devices enrolled per second (claims per second, by claim). */
    perSecond: number;
    durationS: number;
    latencyMs: Summary;
    claim?: ClaimReport;
  };
  connect: {
    /** Connections established (first connects and reconnects). */
    ok: number;
    /** Connection attempts that did not end in CONNACK 0. */
    failed: number;
    /** Failed attempts by reason: CONNACK names, socket error codes, timeouts. */
    failures: Record<string, number>;
    attempts: number;
    reconnects: number;
    /** Established connections that ended without the device ending them. */
    drops: number;
    /** Devices online at the end of the connect phase, and how long it took. */
    online: number;
    phaseS: number;
    /** Devices online per second of the connect phase, on average and in its best second. */
    perSecond: number;
    peakPerSecond: number;
    latencyMs: Summary;
  };
  publish: {
    qos: 0 | 1;
    sent: number;
    /** QoS 0: written to the socket; QoS 1: acknowledged by the broker. */
    completed: number;
    failed: number;
    perSecond: number;
    latencyMs: Summary;
    /** What the telemetry reader received, when the scenario had one; loss and duplicates at QoS 1 only. */
    received?: number;
    lost?: number;
    duplicates?: number;
    abandoned?: number;
    lostExamples?: { deviceId: string; seq: number }[];
    deliveryLatencyMs?: Summary;
  };
  renewal: {
    /** The channels devices renewed over, dealt out in turn. */
    via: RenewalChannel[];
    renewed: number;
    failed: number;
    latencyMs: Summary;
    /** The same, per channel that was used. */
    channels: Partial<Record<RenewalChannel, { renewed: number; failed: number; failures: Record<string, number>; latencyMs: Summary }>>;
  };
  commands: { sent: number; received: number };
  memory: {
    collected: boolean;
    baselineRssMiB: number;
    connectedRssMiB: number;
    /** The simulator's resident memory per connected device: everything since before enrollment. */
    perDeviceKiB: number;
    /** The same, counting only what connecting added (TLS, MQTT client) after enrollment. */
    connectionPerDeviceKiB: number;
    heapPerDeviceKiB: number;
  };
  refusals: Record<string, number>;
  series: { bucketS: number } & Record<SeriesName, number[]>;
  histograms: { connectMs: HistogramBucket[]; completionMs: HistogramBucket[]; deliveryMs: HistogramBucket[]; renewalMs: Partial<Record<RenewalChannel, HistogramBucket[]>> };
  marks: Mark[];
  /** The scenario's own figures. */
  details: Record<string, unknown>;
}

/** Enrollment by claim: the batch, its limit and the fleet's pace, and what the claim sessions met. */
export interface ClaimReport {
  batch: string;
  rateLimit: Rate;
  pace: Rate;
  /** Claim sessions opened (one per device, and one per retry). */
  sessions: number;
  /** Requests accepted, by step. */
  accepted: Record<ClaimStep, number>;
  /** Accepted requests per second over the enrollment. */
  requestsPerSecond: number;
  /** Refusals by code: CONNECT refusals of claim sessions (as for devices) and rejected requests. */
  refusals: Record<string, number>;
  /** Requests that waited for their turn at the pace, and how long in all. */
  paced: { requests: number; waitS: number };
  latencyMs: Record<ClaimStep, Summary>;
}

export interface RunConfig {
  fleet: FleetConfig;
  scenario: Scenario;
  options: ScenarioOptions;
  progress: ProgressSink;
}

const MiB = 1024 * 1024;

/** How long the whole fleet may take to come online: generous, since a storm is what it measures. */
export function connectDeadlineMs(devices: number): number {
  return 60_000 + devices * 20;
}

export async function runScenario({ fleet: fleetConfig, scenario, options, progress }: RunConfig): Promise<RunReport> {
  const fleet = new SimFleet(fleetConfig);
  const startedAt = new Date();
  try {
    const baseline = memorySample();
    progress.phase('enrolling', options.devices);
    fleet.recorder.mark('enrolling');
    const enrollment = await fleet.enroll((done) => progress.update(done));
    if (scenario.publishes(options)) await fleet.startReader(options.qos);
    const enrolledMemory = memorySample();

    progress.phase('connecting', fleet.devices.length);
    fleet.recorder.mark('connecting');
    const connectStarted = fleet.timers.now();
    fleet.startAll();
    const settled = () => fleet.online + fleet.stopped === fleet.devices.length;
    await fleet.until(settled, connectDeadlineMs(fleet.devices.length), () => progress.update(fleet.online, `${fleet.recorder.totals.connectFailures} failed attempts`));
    const connectPhaseS = (fleet.timers.now() - connectStarted) / 1000;
    const onlineAfterConnect = fleet.online;
    const connectedMemory = memorySample();

    fleet.recorder.mark(scenario.name);
    const outcome = await scenario.run({ fleet, options, progress });
    progress.done();
    const telemetryMs = fleet.telemetryMs;

    const criteria = [
      criterion('every device enrolled', enrollment.failed === 0, `${enrollment.ok}/${options.devices} ${fleet.enrollVia === 'claim' ? 'by claim' : 'through the API'}`),
      criterion('every device connected', onlineAfterConnect === options.devices, `${onlineAfterConnect}/${options.devices} online after ${connectPhaseS.toFixed(1)} s`),
      ...outcome.criteria,
    ];
    const r = fleet.recorder;
    const delivery = fleet.delivery();
    const finishedAt = new Date();
    const perDevice = (after: MemorySample, before: MemorySample, key: keyof Omit<MemorySample, 'collected'>) => (after[key] - before[key]) / 1024 / Math.max(1, onlineAfterConnect);
    const peakConnects = Math.max(0, ...r.series.connects);
    return {
      scenario: scenario.name,
      passed: criteria.every((c) => c.passed),
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationS: (finishedAt.getTime() - startedAt.getTime()) / 1000,
      options: { ...options, concurrency: fleetConfig.concurrency, idPrefix: fleetConfig.idPrefix, apiUrl: fleetConfig.apiUrl, mqttUrl: fleetConfig.mqttUrl },
      criteria,
      devices: { requested: options.devices, enrolled: fleet.devices.length, onlineAtEnd: fleet.online, stoppedBy: Object.fromEntries(r.stoppedBy) },
      enroll: enrollReport(fleet, enrollment),
      connect: {
        ok: r.totals.connects,
        failed: r.totals.connectFailures,
        failures: Object.fromEntries(r.refusals),
        attempts: r.totals.attempts,
        reconnects: r.totals.reconnects,
        drops: r.totals.drops,
        online: onlineAfterConnect,
        phaseS: connectPhaseS,
        perSecond: onlineAfterConnect / Math.max(connectPhaseS, 0.001),
        peakPerSecond: peakConnects / (BUCKET_MS / 1000),
        latencyMs: r.connectLatency.summary(),
      },
      publish: {
        qos: options.qos,
        sent: r.totals.published,
        completed: r.totals.completed,
        failed: r.totals.published - r.totals.completed,
        perSecond: telemetryMs > 0 ? r.totals.completed / (telemetryMs / 1000) : 0,
        latencyMs: r.completionLatency.summary(),
        ...(delivery && fleet.reader
          ? {
              received: delivery.received,
              // Loss is a QoS 1 figure: a QoS 0 reading may be dropped by design.
              ...(delivery.qos === 1 ? { lost: delivery.lost, duplicates: delivery.duplicates, abandoned: delivery.abandoned, lostExamples: delivery.lostExamples } : {}),
              deliveryLatencyMs: fleet.reader.delivery.summary(),
            }
          : {}),
      },
      renewal: renewalReport(fleet.renewVia, r),
      commands: { sent: fleet.reader?.counts.commandsSent ?? 0, received: r.totals.commands },
      memory: {
        collected: connectedMemory.collected,
        baselineRssMiB: baseline.rssBytes / MiB,
        connectedRssMiB: connectedMemory.rssBytes / MiB,
        perDeviceKiB: perDevice(connectedMemory, baseline, 'rssBytes'),
        connectionPerDeviceKiB: perDevice(connectedMemory, enrolledMemory, 'rssBytes'),
        heapPerDeviceKiB: perDevice(connectedMemory, baseline, 'heapUsedBytes'),
      },
      refusals: Object.fromEntries(r.refusals),
      series: { bucketS: BUCKET_MS / 1000, ...r.series },
      histograms: {
        connectMs: r.connectLatency.buckets(4),
        completionMs: r.completionLatency.buckets(4),
        deliveryMs: fleet.reader?.delivery.buckets(4) ?? [],
        renewalMs: Object.fromEntries([...r.renewalsVia].map(([channel, via]) => [channel, via.latency.buckets(4)])),
      },
      marks: r.marks,
      details: outcome.details,
    };
  } finally {
    await fleet.shutdown();
  }
}

function enrollReport(fleet: SimFleet, e: EnrollmentFigures): RunReport['enroll'] {
  const batch = fleet.claimBatch;
  const c = fleet.claims;
  const claim: ClaimReport | undefined = batch && {
    batch: batch.name,
    rateLimit: batch.rateLimit,
    pace: batch.pace,
    sessions: c.sessions,
    accepted: { ...c.requests },
    requestsPerSecond: (c.requests.create + c.requests.register) / Math.max(e.durationS, 0.001),
    refusals: Object.fromEntries(c.refusals),
    paced: { requests: c.pacedRequests, waitS: c.pacedMs / 1000 },
    latencyMs: { create: c.latency.create.summary(), register: c.latency.register.summary() },
  };
  return { via: fleet.enrollVia, ok: e.ok, failed: e.failed, failures: e.failures, perSecond: e.perSecond, durationS: e.durationS, latencyMs: e.latency.summary(), ...(claim ? { claim } : {}) };
}

function renewalReport(via: readonly RenewalChannel[], r: Recorder): RunReport['renewal'] {
  const channels: RunReport['renewal']['channels'] = {};
  for (const [channel, renewals] of r.renewalsVia) channels[channel] = { renewed: renewals.renewed, failed: renewals.failed, failures: Object.fromEntries(renewals.failures), latencyMs: renewals.latency.summary() };
  return { via: [...via], renewed: r.totals.renewals, failed: r.totals.renewalFailures, latencyMs: r.renewalLatency.summary(), channels };
}
