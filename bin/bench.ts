// `npm run bench`: our broker and a Mosquitto of its own under the same client load, one
// table with ratios. Broker CPU and memory are read from each broker's process (/proc), not
// from the client, which is the bottleneck on a small machine. Several rounds, brokers
// alternating in order, medians reported; every round written as JSON to bench-results/.
//
//   npm run bench [-- --quick] [--devices N] [--rounds R] [--duration S] [--rate MSG_PER_S]
//                 [--revoke K] [--certificates N]
//   npm run bench -- registry [--quick]
//   npm run bench -- cluster [--quick] [--devices N] [--duration S] [--rate MSG_PER_S] [--revoke K]
//   npm run bench -- batch [--quick] [--lines N]
//   npm run bench -- crl [--entries N]
//   npm run bench -- codec
//   npm run bench -- floor [--quick] [--devices N] [--rounds R]
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ApiClient } from '../firmware-sim/api-client.js';
import { enrollFleet, enrollReader, type BenchDevice } from '../firmware-sim/bench/fleet.js';
import { connectAll, connectDevice, disconnectAll, fanIn, revokeEach, startReading, withoutRevoked, type Connected, type RevocationTimes } from '../firmware-sim/bench/load.js';
import { startFloorServer, type FloorKind } from '../firmware-sim/bench/floor.js';
import { startMosquitto } from '../firmware-sim/bench/mosquitto.js';
import { startOurs } from '../firmware-sim/bench/ours.js';
import { readServerPki, type ServerPki } from '../firmware-sim/bench/server-pki.js';
import { measure, sampleProcess, settledRssKiB } from '../firmware-sim/bench/proc.js';
import { deviceIds } from '../firmware-sim/run.js';
import { clusterBench, clusterTable, type ClusterSettings } from './bench-cluster.js';
import { batchBench, type BatchRun } from './bench-batch.js';
import { codecBench } from './bench-codec.js';
import { crlBench } from './bench-crl.js';
import { issuanceBenchInOwnProcess, type IssuanceFigures } from './bench-issuance.js';
import { registryBench } from './bench-registry.js';

interface Settings {
  devices: number;
  rounds: number;
  durationMs: number;
  /** Telemetry messages per second, across the whole fleet. */
  rate: number;
  revoke: number;
  certificates: number;
  concurrency: number;
  /** How long memory is watched for its low point, before and after connecting. */
  settleMs: number;
  /** Devices that connect and leave before anything is measured. */
  warmup: number;
  /** Fan-in that runs, unmeasured, before the measured one, on both brokers alike. */
  messageWarmupMs: number;
}

interface BrokerFigures {
  connected: number;
  connectFailures: Record<string, number>;
  /** On a warmed broker. */
  cpuUsPerConnect: number;
  /** The same connects on a broker that has just started (reported in the JSON). */
  coldCpuUsPerConnect: number;
  /** On a broker that has just started (see measureMemory). */
  kibPerDevice: number;
  published: number;
  routed: number;
  cpuUsPerMessage: number;
  revocation?: RevocationTimes;
  /** What our broker logged as refusals while it served this figure's load, by reason code (ours only). */
  refusals?: Record<string, number>;
  /** The first of them as logged, facts included (client id, serial, detail). */
  firstRefusals?: Record<string, unknown>[];
}

interface Round {
  ours: BrokerFigures;
  mosquitto: BrokerFigures;
  issuance: IssuanceFigures;
}

type BrokerKind = 'ours' | 'mosquitto';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const say = (line: string) => console.error(line);

interface Fleet {
  dataDir: string;
  devices: BenchDevice[];
  /** Devices that only warm a broker up: never among those measured, so every measured connect is one the registry is asked about. */
  warmup: BenchDevice[];
  reader: BenchDevice;
  pki: ServerPki;
}

// Our broker's per-device and per-address limits sit above the benchmark's load, so the
// figures are the broker's cost, not our pacing or our abuse control refusing a load test.
function ourLimits(s: Settings): string[] {
  const perDevice = Math.ceil((s.rate / s.devices) * 10) + 10;
  return ['--publish-rate', String(perDevice), '--publish-burst', String(perDevice * 2), '--address-connect-rate', '100000', '--address-connect-burst', '100000'];
}

async function enroll(s: Settings): Promise<Fleet> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fleet-bench-'));
  const service = await startOurs(ourLimits(s), dataDir);
  try {
    const api = new ApiClient({ baseUrl: service.apiUrl, ca: service.ca, token: service.token });
    const prefix = `bench-${Date.now().toString(36)}`;
    const devices = await enrollFleet(api, deviceIds(prefix, s.devices), service.ca, 32, (n) => say(`  enrolled ${n}/${s.devices}`));
    const warmup = await enrollFleet(api, deviceIds(`${prefix}-warmup`, s.warmup), service.ca, 32, () => undefined);
    const reader = await enrollReader(api, `${prefix}-reader`, service.ca);
    return {
      dataDir,
      devices,
      warmup,
      reader,
      // The chain our service serves, so Mosquitto sends the same certificates.
      pki: await readServerPki(dataDir, service.ca),
    };
  } finally {
    await service.stop();
  }
}

/** A broker's CPU milliseconds per second while it serves nothing new. */
async function idleCpu(pid: number): Promise<number> {
  const from = sampleProcess(pid).cpuMs;
  await sleep(2000);
  return (sampleProcess(pid).cpuMs - from) / 2;
}

async function startBroker(kind: BrokerKind, fleet: Fleet, s: Settings) {
  const ours = kind === 'ours' ? await startOurs(ourLimits(s), fleet.dataDir) : undefined;
  const broker = ours ?? (await startMosquitto(fleet.pki, { readers: [fleet.reader.id] }));
  return { broker, ours };
}

/**
 * Memory per device, on a broker that has served no connection yet: one that had would hold
 * memory freed by them (its heap's and the allocator's) and hand it to the next ones, and
 * the growth measured would be less than what a device really costs.
 */
async function measureMemory(kind: BrokerKind, fleet: Fleet, devices: BenchDevice[], s: Settings): Promise<Pick<BrokerFigures, 'kibPerDevice' | 'coldCpuUsPerConnect' | 'refusals' | 'firstRefusals'>> {
  const { broker, ours } = await startBroker(kind, fleet, s);
  try {
    const reader = await connectDevice(fleet.reader, broker.mqttUrl);
    const idleRssKiB = await settledRssKiB(broker.pid, s.settleMs);
    const connecting = await measure(broker.pid, () => connectAll(devices, broker.mqttUrl, s.concurrency));
    const { connected } = connecting.result;
    const connectedRssKiB = await settledRssKiB(broker.pid, s.settleMs);
    say(`  ${kind}: ${((connectedRssKiB - idleRssKiB) / Math.max(1, connected.length)).toFixed(1)} KiB per device, ${connected.length} connected to a fresh broker`);
    await disconnectAll([...connected, reader]);
    sayRefusals(kind, ours?.refusals);
    return { kibPerDevice: (connectedRssKiB - idleRssKiB) / Math.max(1, connected.length), coldCpuUsPerConnect: (connecting.cpuMs * 1000) / Math.max(1, connected.length), refusals: ours && { ...ours.refusals }, firstRefusals: ours?.firstRefusals };
  } finally {
    await broker.stop();
  }
}

/**
 * CPU per mutual-TLS connect with the connections held, on a server in its steady state: the
 * warm-up devices connect and leave first, and what the server spends doing nothing (timers,
 * metrics) is measured before and taken out, for every server alike.
 */
async function heldConnects(server: { pid: number; mqttUrl: string }, fleet: Fleet, devices: BenchDevice[], s: Pick<Settings, 'concurrency'>): Promise<{ connected: Connected[]; failures: Record<string, number>; cpuUsPerConnect: number }> {
  const warmup = await connectAll(fleet.warmup, server.mqttUrl, s.concurrency);
  await disconnectAll(warmup.connected);
  await sleep(1000);
  const idleCpuMsPerSecond = await idleCpu(server.pid);
  const started = performance.now();
  const connecting = await measure(server.pid, () => connectAll(devices, server.mqttUrl, s.concurrency));
  const cpuMs = Math.max(0, connecting.cpuMs - (idleCpuMsPerSecond * (performance.now() - started)) / 1000);
  const { connected, failures } = connecting.result;
  return { connected, failures, cpuUsPerConnect: (cpuMs * 1000) / Math.max(1, connected.length) };
}

/**
 * CPU per connect and per message, and revocation, on a broker in its steady state: a
 * broker runs for months, and a fresh Node.js process spends its first thousands of connects
 * compiling its hot code. Both brokers get the same warm-up (devices of their own connect and
 * leave) before anything is measured.
 */
async function measureWork(kind: BrokerKind, fleet: Fleet, devices: BenchDevice[], s: Settings): Promise<Omit<BrokerFigures, 'kibPerDevice' | 'coldCpuUsPerConnect'>> {
  const { broker, ours } = await startBroker(kind, fleet, s);
  try {
    const reader = await connectDevice(fleet.reader, broker.mqttUrl);
    const reading = await startReading(reader);
    const connecting = await heldConnects(broker, fleet, devices, s);
    const { connected } = connecting;
    // The message path gets what the connect path got from the warm-up devices: a fresh
    // Node.js process compiles its hot code over its first tens of thousands of messages, and
    // measured from the first message on, that compilation was most of a quick run's figure.
    await fanIn(connected, reading, s.rate, s.messageWarmupMs);
    await sleep(s.settleMs / 4);
    // Idle again with the devices connected: their keep-alive timers are part of it now.
    const idleCpuMsPerSecond = await idleCpu(broker.pid);
    say(`  ${kind}: connected ${connected.length}/${devices.length}`);

    const telemetry = await measure(broker.pid, () => fanIn(connected, reading, s.rate, s.durationMs));
    const messageCpuMs = Math.max(0, telemetry.cpuMs - (idleCpuMsPerSecond * s.durationMs) / 1000);
    say(`  ${kind}: routed ${telemetry.result.received}/${telemetry.result.published}`);

    let revocation: RevocationTimes | undefined;
    if (ours) {
      const api = new ApiClient({ baseUrl: ours.apiUrl, ca: ours.ca, token: ours.token });
      revocation = await revokeEach(api, connected.slice(0, Math.min(s.revoke, connected.length)));
      say(`  ${kind}: revoked ${revocation.revoked}, p99 ${revocation.requestToCloseMs.p99.toFixed(1)} ms`);
    }
    await disconnectAll([...connected, reader]);
    sayRefusals(kind, ours?.refusals);
    return {
      refusals: ours && { ...ours.refusals },
      firstRefusals: ours?.firstRefusals,
      connected: connected.length,
      connectFailures: connecting.failures,
      cpuUsPerConnect: connecting.cpuUsPerConnect,
      published: telemetry.result.published,
      routed: telemetry.result.received,
      cpuUsPerMessage: (messageCpuMs * 1000) / Math.max(1, telemetry.result.received),
      revocation,
    };
  } finally {
    await broker.stop();
  }
}

async function measureBroker(kind: BrokerKind, fleet: Fleet, devices: BenchDevice[], s: Settings): Promise<BrokerFigures> {
  const memory = await measureMemory(kind, fleet, devices, s);
  const work = await measureWork(kind, fleet, devices, s);
  return {
    ...memory,
    ...work,
    refusals: work.refusals && addCounts(memory.refusals ?? {}, work.refusals),
    firstRefusals: work.firstRefusals && [...(memory.firstRefusals ?? []), ...work.firstRefusals],
  };
}

function addCounts(...counts: Record<string, number>[]): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const count of counts) for (const [key, n] of Object.entries(count)) sum[key] = (sum[key] ?? 0) + n;
  return sum;
}

const countsLine = (counts: Record<string, number>) =>
  Object.entries(counts)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(', ');

/** Every device of the benchmark is good: a refusal is a finding, and its reason is said at once. */
function sayRefusals(kind: BrokerKind, refusals: Record<string, number> | undefined): void {
  if (refusals && Object.keys(refusals).length > 0) say(`  ${kind}: REFUSED ${countsLine(refusals)}`);
}

function table(rounds: Round[], s: Settings): string {
  const m = (pick: (r: Round) => number) => median(rounds.map(pick));
  const f = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
  const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}×` : '-');
  const row = (figure: string, pick: (b: BrokerFigures) => number, digits = 0) => {
    const ours = m((r) => pick(r.ours));
    const theirs = m((r) => pick(r.mosquitto));
    return `| ${figure} | ${f(ours, digits)} | ${f(theirs, digits)} | ${ratio(ours, theirs)} |`;
  };
  const p = (q: 'p50' | 'p99') => m((r) => r.ours.revocation?.requestToCloseMs[q] ?? NaN);
  const closedFirst = rounds.map((r) => `${r.ours.revocation?.closedBeforeAck ?? 0}/${r.ours.revocation?.revoked ?? 0}`).join(', ');
  const refused = addCounts(...rounds.map((r) => r.ours.refusals ?? {}));
  return [
    '| figure | ours | Mosquitto | ratio |',
    '|---|---|---|---|',
    row(`broker CPU µs per mutual-TLS connect (${s.devices} connections held)`, (b) => b.cpuUsPerConnect),
    row(`broker CPU µs per routed QoS0 message (fan-in at ${s.rate}/s, ACL on)`, (b) => b.cpuUsPerMessage, 1),
    row('broker KB of memory per connected device (idle, the low point once memory settles)', (b) => (b.kibPerDevice * 1024) / 1000, 1),
    `| revocation acknowledged → session closed, p50 / p99 ms, measured from the request (closed before the acknowledgement: ${closedFirst}) | ${f(p('p50'))} / ${f(p('p99'))} | | |`,
    `| certificates issued per second, one core (CSR check, signature, durable record; ${f(m((r) => r.issuance.cpuMsPerCertificate * 1000), 0)} µs CPU each: CSR ${f(m((r) => r.issuance.stagesUs.csr), 0)}, build+sign ${f(m((r) => r.issuance.stagesUs.sign), 0)}, record and the rest ${f(m((r) => r.issuance.stagesUs.rest), 0)}) | ${f(m((r) => r.issuance.perCpuSecond), 0)} | | |`,
    `| refusals our broker logged, every round, by reason (the devices are all good: should be none) | ${countsLine(refused) || 'none'} | | |`,
  ].join('\n');
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      devices: { type: 'string' },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      rate: { type: 'string' },
      revoke: { type: 'string' },
      certificates: { type: 'string' },
      lines: { type: 'string' },
      entries: { type: 'string' },
    },
  });
  const quick = values.quick;
  if (positionals[0] === 'registry') return registryMain(quick);
  if (positionals[0] === 'crl') return crlMain(Number(values.entries ?? 100_000));
  if (positionals[0] === 'codec') return codecMain();
  if (positionals[0] === 'batch') return batchMain(Number(values.lines ?? (quick ? 5000 : 100_000)));
  if (positionals[0] === 'cluster') {
    return clusterMain({
      devices: Number(values.devices ?? (quick ? 300 : 3000)),
      durationMs: Number(values.duration ?? (quick ? 3 : 10)) * 1000,
      rate: Number(values.rate ?? (quick ? 5000 : 20_000)),
      revoke: Number(values.revoke ?? (quick ? 20 : 100)),
      concurrency: 64,
      database: process.env.FLEET_BENCH_DATABASE ?? 'postgres://postgres@127.0.0.1:5432/test',
      say,
    });
  }
  const s: Settings = {
    devices: Number(values.devices ?? (quick ? 300 : 10_000)),
    rounds: Number(values.rounds ?? (quick ? 1 : 3)),
    durationMs: Number(values.duration ?? (quick ? 2 : 10)) * 1000,
    rate: Number(values.rate ?? (quick ? 2000 : 5000)),
    revoke: Number(values.revoke ?? (quick ? 20 : 200)),
    certificates: Number(values.certificates ?? (quick ? 1000 : 10_000)),
    concurrency: 64,
    // Quick mode checks that every stage runs, within a minute; its memory figure is rough.
    settleMs: quick ? 2500 : 20_000,
    warmup: Math.min(quick ? 300 : 2000, Number(values.devices ?? (quick ? 300 : 10_000))),
    // Our broker's CPU per message keeps falling over its first 25,000 or so (measured here:
    // 40-54 µs each, then 30-39); the full run warms with 30,000 at its default rate.
    messageWarmupMs: quick ? 2000 : 6000,
  };
  if (positionals[0] === 'floor') {
    const devices = Number(values.devices ?? (quick ? 300 : 3000));
    return floorMain({ ...s, devices, warmup: Math.min(quick ? 300 : 1500, devices), rounds: Number(values.rounds ?? (quick ? 1 : 3)) });
  }
  say(`enrolling ${s.devices} devices and a telemetry reader`);
  const fleet = await enroll(s);
  const rounds: Round[] = [];
  try {
    let pool = fleet.devices;
    for (let i = 0; i < s.rounds; i++) {
      say(`round ${i + 1}/${s.rounds}`);
      const order: BrokerKind[] = i % 2 === 0 ? ['mosquitto', 'ours'] : ['ours', 'mosquitto'];
      const figures: Partial<Record<BrokerKind, BrokerFigures>> = {};
      // Revocation (ours) burns devices: both brokers see the same pool in a round.
      for (const kind of order) figures[kind] = await measureBroker(kind, fleet, pool, s);
      pool = withoutRevoked(pool, figures.ours!.revocation);
      const issuance = await issuanceBenchInOwnProcess(s.certificates);
      const stages = issuance.stagesUs;
      say(`  issuance: ${issuance.perCpuSecond.toFixed(0)} certificates per CPU second (µs CPU each: CSR ${stages.csr.toFixed(0)}, build+sign ${stages.sign.toFixed(0)}, record and the rest ${stages.rest.toFixed(0)})`);
      rounds.push({ ours: figures.ours!, mosquitto: figures.mosquitto!, issuance });
    }
  } finally {
    await rm(fleet.dataDir, { recursive: true, force: true });
  }
  console.log(table(rounds, s));
  await writeResults('bench', { settings: s, rounds }, 'rounds written to');
}

/** Writes a run's figures to bench-results/<kind>-<time>.json and says where. */
async function writeResults(kind: string, figures: unknown, what: string): Promise<void> {
  await mkdir('bench-results', { recursive: true });
  const file = `bench-results/${kind}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  await writeFile(file, JSON.stringify(figures, null, 2));
  console.log(`\n${what} ${file}`);
}

type FloorServerKind = FloorKind | BrokerKind;

const FLOOR_ROWS: [FloorServerKind, string][] = [
  ['node-tls', 'node:tls alone, with our TLS settings (a CONNACK written by hand, nothing else)'],
  ['aedes', 'Aedes on the same node:tls server (its defaults: memory persistence, no checks)'],
  ['ours', 'our broker (admission against the registry, topic policy, audit log line)'],
  ['mosquitto', 'Mosquitto (as in `npm run bench`)'],
];

/**
 * `npm run bench -- floor`: CPU per held mutual-TLS connect of our broker beside what the
 * stack it is built on costs alone, under the same client load: the floor a broker on
 * Node.js's TLS and on Aedes cannot go below, whatever it checks.
 */
async function floorMain(s: Settings): Promise<void> {
  say(`floor: enrolling ${s.devices} devices`);
  const fleet = await enroll(s);
  const rounds: Record<FloorServerKind, number>[] = [];
  try {
    for (let i = 0; i < s.rounds; i++) {
      say(`round ${i + 1}/${s.rounds}`);
      const round = {} as Record<FloorServerKind, number>;
      for (const [kind] of FLOOR_ROWS) {
        const server = kind === 'ours' || kind === 'mosquitto' ? (await startBroker(kind, fleet, s)).broker : await startFloorServer(kind, fleet.pki);
        try {
          const held = await heldConnects(server, fleet, fleet.devices, s);
          if (held.connected.length !== fleet.devices.length) throw new Error(`${kind}: ${held.connected.length}/${fleet.devices.length} connected (${countsLine(held.failures)})`);
          round[kind] = held.cpuUsPerConnect;
          say(`  ${kind}: ${held.cpuUsPerConnect.toFixed(0)} µs per connect`);
          await disconnectAll(held.connected);
        } finally {
          await server.stop();
        }
      }
      rounds.push(round);
    }
  } finally {
    await rm(fleet.dataDir, { recursive: true, force: true });
  }
  const m = (kind: FloorServerKind) => median(rounds.map((r) => r[kind]));
  console.log(
    [
      `| server, same client load | broker CPU µs per mutual-TLS connect (${s.devices} held, median of ${s.rounds}) | × Mosquitto |`,
      '|---|---|---|',
      ...FLOOR_ROWS.map(([kind, what]) => `| ${what} | ${m(kind).toFixed(0)} | ${(m(kind) / m('mosquitto')).toFixed(2)}× |`),
    ].join('\n'),
  );
  await writeResults('floor', { settings: s, rounds }, 'rounds written to');
}

async function clusterMain(s: ClusterSettings): Promise<void> {
  say(`cluster of 1, 2 and 3 nodes: ${s.devices} devices, telemetry offered at ${s.rate}/s for ${s.durationMs / 1000} s`);
  const figures = await clusterBench(s);
  console.log(clusterTable(figures, s));
  await mkdir('bench-results', { recursive: true });
  const file = `bench-results/cluster-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  await writeFile(file, JSON.stringify({ settings: s, figures }, null, 2)); // `say` is a function: left out
  console.log(`\nwritten to ${file}`);
}

async function registryMain(quick: boolean): Promise<void> {
  const scale = quick ? 10 : 1;
  const results = await registryBench({
    devices: 100_000 / scale,
    certificatesPerDevice: 2,
    cascadeCertificates: 10_000 / scale,
    connected: 1000 / scale,
    say,
  });
  const f = (key: string, digits = 1) => Number(results[key]).toFixed(digits);
  console.log(
    [
      '| figure | value |',
      '|---|---|',
      `| registry | ${100_000 / scale} devices, ${(200_000 + 10_000) / scale} certificates, SQLite |`,
      `| fleet graph build at start (${results.graphNodes} nodes, ${results.graphEdges} edges) | ${f('graphBuildMs', 0)} ms |`,
      `| fleet graph heap | ${f('graphHeapMiB')} MiB |`,
      `| service start, graph included | ${f('serviceStartMs', 0)} ms |`,
      `| blast radius of a CA with ${results.blastRadiusCascadeCertificates} certificates | ${f('blastRadiusCascadeMs')} ms |`,
      `| blast radius of the root (${results.blastRadiusRootCertificates} certificates, ${results.blastRadiusRootDevices} devices) | ${f('blastRadiusRootMs')} ms |`,
      `| cascade revoke of ${results.cascadeRevokedCertificates} certificates: request → acknowledged | ${f('cascadeAckMs', 0)} ms |`,
      `| cascade revoke: request → last of ${results.cascadeSessionsClosed} live sessions closed | ${f('cascadeLastSessionClosedMs', 0)} ms |`,
    ].join('\n'),
  );
  await writeResults('registry', results, 'written to');
}

async function codecMain(): Promise<void> {
  const r = codecBench();
  console.log(
    [
      '| figure | value |',
      '|---|---|',
      `| mqtt-packet ${r.patched ? 'with broker/patches/ applied' : 'WITHOUT broker/patches/'} | best of ${r.runs} runs of ${r.packets} packets |`,
      `| ns to parse a 64-byte QoS 0 PUBLISH | ${r.parseNs.toFixed(0)} |`,
      `| ns to write one | ${r.writeNs.toFixed(0)} |`,
    ].join('\n'),
  );
  await writeResults('codec', r, 'written to');
}

async function crlMain(entries: number): Promise<void> {
  const r = await crlBench(entries, say);
  console.log(
    [
      '| figure | value |',
      '|---|---|',
      `| CRL entries (issuing CA, SQLite registry) | ${r.entries} |`,
      `| DER written and signed (median of 3) | ${r.signMs.toFixed(0)} ms, ${(r.derBytes / 1024 / 1024).toFixed(1)} MiB |`,
      `| rebuild from the registry: query, DER, signature, PEM file | ${r.rebuildMs.toFixed(0)} ms |`,
      `| revocation request → acknowledged, the CRL rebuilt before the answer | ${r.revocationAckMs.toFixed(0)} ms |`,
      `| openssl crl -CAfile … verifies it | ${r.opensslVerified ? 'yes' : 'NO'} |`,
    ].join('\n'),
  );
  await writeResults('crl', r, 'written to');
}

async function batchMain(lines: number): Promise<void> {
  const { mint, replay } = await batchBench(lines, say);
  const f = (n: number, digits = 0) => n.toFixed(digits);
  const row = (name: string, r: BatchRun) => {
    const heap = r.samples.map((s) => s.heapUsedMiB);
    const first = r.samples[0]!;
    const last = r.samples[r.samples.length - 1]!;
    return `| ${name} | ${r.issued} issued, ${r.replayed} replayed, ${Object.values(r.errors).reduce((a, b) => a + b, 0)} errors | ${f(r.wallSeconds, 1)} s (${f(r.linesPerSecond)} lines/s) | ${f(first.heapUsedMiB)} → ${f(last.heapUsedMiB)} (${heap.map((h) => f(h)).join(', ')}) | ${f(r.heapKiBPerLine, 2)} | ${f(first.rssMiB)} → ${f(last.rssMiB)} |`;
  };
  console.log(
    [
      `| ${lines}-line batch (POST /v1/batches, SQLite) | lines | wall time | service live heap MiB after a full GC, every 10,000 lines | heap KiB per line | service RSS MiB |`,
      '|---|---|---|---|---|---|',
      row('first run: every line minted, its device registered', mint),
      row('same Idempotency-Key again: every line replayed', replay),
    ].join('\n'),
  );
  await writeResults('batch', { lines, mint, replay }, 'written to');
}

await main();
