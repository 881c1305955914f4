// What every scenario is: a name, what it needs from the run, and a body that drives an
// enrolled, connected fleet and says which of its pass criteria held.
import type { SimFleet } from '../fleet.js';

export interface ScenarioOptions {
  devices: number;
  /** Telemetry readings per second, per device (0: none). */
  ratePerDevice: number;
  /** How long the scenario's main phase lasts. */
  durationMs: number;
  qos: 0 | 1;
  /** `revocation`: how many devices to revoke. */
  revoke: number;
  /** `churn`: the mean time between two drops of one device. */
  dropIntervalMs: number;
  /** How long to wait for QoS 1 readings in flight once telemetry stops. */
  drainMs: number;
}

export interface Criterion {
  name: string;
  passed: boolean;
  /** What was measured, in words a person reads in the table. */
  actual: string;
}

export interface ScenarioOutcome {
  criteria: Criterion[];
  /** The scenario's own figures, under its name in the report. */
  details: Record<string, unknown>;
}

/** A progress display: the run tells it which phase it is in and how far along. */
export interface ProgressSink {
  phase(name: string, total: number): void;
  update(value: number, detail?: string): void;
  done(): void;
}

export interface ScenarioContext {
  fleet: SimFleet;
  options: ScenarioOptions;
  progress: ProgressSink;
}

export interface Scenario {
  name: ScenarioName;
  summary: string;
  /** Whether the devices publish telemetry (and so a reader is enrolled to receive it). */
  publishes(options: ScenarioOptions): boolean;
  run(context: ScenarioContext): Promise<ScenarioOutcome>;
}

export const SCENARIO_NAMES = ['storm', 'telemetry', 'rotation', 'revocation', 'churn'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export function criterion(name: string, passed: boolean, actual: string): Criterion {
  return { name, passed, actual };
}

/** Runs telemetry for the main phase with the progress bar counting seconds. */
export async function timedPhase(context: ScenarioContext, name: string, ms: number, during: (elapsedMs: number) => void = () => undefined): Promise<void> {
  const { fleet, progress } = context;
  const started = fleet.timers.now();
  progress.phase(name, Math.ceil(ms / 1000));
  await fleet.hold(ms, () => {
    const elapsed = fleet.timers.now() - started;
    during(elapsed);
    progress.update(Math.min(Math.ceil(ms / 1000), Math.floor(elapsed / 1000)), `${fleet.online}/${fleet.devices.length} online`);
  });
}
