// The scenarios `fleet sim --scenario NAME` runs, by name.
import { churn } from './churn.js';
import { revocation } from './revocation.js';
import { rotation } from './rotation.js';
import type { Scenario, ScenarioName } from './scenario.js';
import { storm } from './storm.js';
import { telemetry } from './telemetry.js';

export const SCENARIOS: Readonly<Record<ScenarioName, Scenario>> = Object.freeze({ storm, telemetry, rotation, revocation, churn });
