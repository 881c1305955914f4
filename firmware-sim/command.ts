// `fleet sim`: reads its options, finds the operator token and CA bundle in the data
// directory (or takes them as flags), runs one scenario, prints its summary (or the JSON
// report) and writes the JSON and HTML reports. Exit code 0 when the scenario passed, 1 when
// it did not (or could not run), 2 for a usage error.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_CLAIM_RATE, MAX_CLAIM_RATE } from './claim-batch.js';
import { DEFAULT_RENEWAL_CHANNELS } from './fleet.js';
import { ENROLLMENT_CHANNELS, RENEWAL_CHANNELS, type EnrollmentChannel, type RenewalChannel } from './device/issuance.js';
import { BarProgress, LineProgress, silentProgress } from './progress.js';
import { formatSummary } from './report/table.js';
import { DEFAULT_REPORT_DIR, writeReports } from './report/write.js';
import { runScenario } from './run.js';
import { SCENARIOS } from './scenarios/index.js';
import { SCENARIO_NAMES, type ScenarioName, type ScenarioOptions } from './scenarios/scenario.js';

export const SIM_USAGE = `fleet sim [--scenario storm|telemetry|rotation|revocation|churn] [--devices 10]
          [--rate 1] [--duration 10] [--qos 0|1] [--concurrency 32] [--revoke K]
          [--drop-interval 5] [--drain 10] [--enroll api|claim] [--claim-rate ${DEFAULT_CLAIM_RATE}]
          [--renew mqtt|https|api[,…]] [--report-dir ./sim-reports] [--json]
          [--data DIR] [--api URL] [--mqtt URL] [--token TOKEN] [--ca PEM] [--prefix ID]`;

class UsageError extends Error {}

function number(value: string, flag: string, { integer = false, min = 0, exclusive = true } = {}): number {
  const n = Number(value);
  const ok = value.trim() !== '' && Number.isFinite(n) && (!integer || Number.isInteger(n)) && (exclusive ? n > min : n >= min);
  if (!ok) throw new UsageError(`${flag} must be a${integer ? 'n integer' : ' number'} ${exclusive ? 'above' : 'of at least'} ${min}, got ${value}`);
  return n;
}

interface SimArgs {
  scenario: ScenarioName;
  options: ScenarioOptions;
  concurrency: number;
  enrollVia: EnrollmentChannel;
  claimRate: number;
  renewVia: RenewalChannel[];
  data: string;
  api: string;
  mqtt: string;
  token?: string;
  ca?: string;
  prefix?: string;
  reportDir: string;
  json: boolean;
}

export function parseSimArgs(args: string[]): SimArgs {
  let values;
  try {
    values = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        scenario: { type: 'string', default: 'telemetry' },
        devices: { type: 'string', default: '10' },
        rate: { type: 'string' },
        duration: { type: 'string', default: '10' },
        qos: { type: 'string' },
        concurrency: { type: 'string', default: '32' },
        revoke: { type: 'string' },
        'drop-interval': { type: 'string', default: '5' },
        drain: { type: 'string', default: '10' },
        enroll: { type: 'string', default: 'api' },
        'claim-rate': { type: 'string', default: String(DEFAULT_CLAIM_RATE) },
        renew: { type: 'string', default: DEFAULT_RENEWAL_CHANNELS.join(',') },
        'report-dir': { type: 'string', default: DEFAULT_REPORT_DIR },
        data: { type: 'string', default: './data' },
        api: { type: 'string', default: 'https://127.0.0.1:8443' },
        mqtt: { type: 'string', default: 'mqtts://127.0.0.1:8883' },
        token: { type: 'string' },
        ca: { type: 'string' },
        prefix: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const scenario = values.scenario as ScenarioName;
  if (!SCENARIO_NAMES.includes(scenario)) throw new UsageError(`--scenario must be one of ${SCENARIO_NAMES.join(', ')}, got ${values.scenario}`);
  if (values.qos !== undefined && values.qos !== '0' && values.qos !== '1') throw new UsageError(`--qos must be 0 or 1, got ${values.qos}`);
  // Rotation's verdict is about QoS 1 loss, so it publishes at QoS 1 unless told otherwise — and QoS 0 cannot pass it.
  if (scenario === 'rotation' && values.qos === '0') throw new UsageError('--scenario rotation measures QoS 1 loss; it runs with --qos 1');
  const qos = values.qos === undefined ? (scenario === 'rotation' ? 1 : 0) : values.qos === '1' ? 1 : 0;
  const devices = number(values.devices, '--devices', { integer: true });
  const rate = values.rate === undefined ? 1 : number(values.rate, '--rate', { min: 0, exclusive: scenario === 'rotation' || scenario === 'telemetry' });
  const revoke = values.revoke === undefined ? Math.max(1, Math.ceil(devices / 10)) : number(values.revoke, '--revoke', { integer: true });
  if (revoke > devices) throw new UsageError(`--revoke ${revoke} is more than --devices ${devices}`);
  const enrollVia = values.enroll as EnrollmentChannel;
  if (!ENROLLMENT_CHANNELS.includes(enrollVia)) throw new UsageError(`--enroll must be one of ${ENROLLMENT_CHANNELS.join(', ')}, got ${values.enroll}`);
  const claimRate = number(values['claim-rate'], '--claim-rate');
  if (claimRate > MAX_CLAIM_RATE) throw new UsageError(`--claim-rate is at most ${MAX_CLAIM_RATE} requests a second (a claim batch's limit), got ${values['claim-rate']}`);
  const renewVia = values.renew.split(',').map((c) => c.trim()) as RenewalChannel[];
  const unknownChannel = renewVia.find((c) => !RENEWAL_CHANNELS.includes(c));
  if (unknownChannel !== undefined) throw new UsageError(`--renew takes ${RENEWAL_CHANNELS.join(', ')} or a comma-separated list of them, got ${values.renew}`);
  if (values.prefix !== undefined && !/^[A-Za-z0-9._:-]{1,100}$/.test(values.prefix)) throw new UsageError('--prefix must be 1–100 characters of A–Z, a–z, 0–9, ".", "_", ":", "-"');
  return {
    scenario,
    options: {
      devices,
      ratePerDevice: rate,
      durationMs: number(values.duration, '--duration') * 1000,
      qos,
      revoke,
      dropIntervalMs: number(values['drop-interval'], '--drop-interval') * 1000,
      drainMs: number(values.drain, '--drain', { exclusive: false }) * 1000,
    },
    concurrency: number(values.concurrency, '--concurrency', { integer: true }),
    enrollVia,
    claimRate,
    renewVia,
    data: values.data,
    api: values.api,
    mqtt: values.mqtt,
    token: values.token,
    ca: values.ca,
    prefix: values.prefix,
    reportDir: values['report-dir'],
    json: values.json,
  };
}

export async function runSimCommand(args: string[]): Promise<number> {
  let sim: SimArgs;
  try {
    sim = parseSimArgs(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`fleet sim: ${error.message}\n\nusage: ${SIM_USAGE}`);
    return 2;
  }
  try {
    const progress = process.stderr.isTTY ? new BarProgress() : sim.json ? silentProgress : new LineProgress((line) => console.error(line));
    const report = await runScenario({
      scenario: SCENARIOS[sim.scenario],
      options: sim.options,
      progress,
      fleet: {
        apiUrl: sim.api,
        mqttUrl: sim.mqtt,
        token: (sim.token ?? readFileSync(join(sim.data, 'admin.token'), 'utf8')).trim(),
        caPem: readFileSync(sim.ca ?? join(sim.data, 'pki', 'ca-bundle.pem'), 'utf8'),
        idPrefix: sim.prefix ?? `sim-${randomBytes(3).toString('hex')}`,
        devices: sim.options.devices,
        qos: sim.options.qos,
        concurrency: sim.concurrency,
        enrollVia: sim.enrollVia,
        claimRate: sim.claimRate,
        renewVia: sim.renewVia,
      },
    });
    const files = await writeReports(report, sim.reportDir);
    console.log(sim.json ? JSON.stringify(report, null, 2) : formatSummary(report, [files.json, files.html]));
    if (sim.json) console.error(`reports: ${files.json}, ${files.html}`);
    return report.passed ? 0 : 1;
  } catch (error) {
    console.error(`fleet sim: ${(error as Error).message}`);
    return 1;
  }
}
