// A whole service started in-process on free ports with its own temporary data directory,
// plus the helpers an end-to-end test needs: the API with the operator token, enrollment,
// MQTT connections over mutual TLS, log events and metrics.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import type { IClientOptions } from 'mqtt';
import type { BrokerOptions } from '../../broker/broker.js';
import { DEFAULT_BROKER_OPTIONS, startService, type RunningService } from '../../bin/service.js';
import { dataLayout } from '../../bin/data-dir.js';
import { importPrivateKey } from '../../provisioning/pki/keys.js';
import { CaSigner } from '../../provisioning/pki/signer.js';
import { x509 } from '../../provisioning/pki/x509.js';
import type { Clock } from '../../registry/clock.js';
import { httpsRequest, type HttpRequest, type HttpResult } from './https.js';
import { ecKeyWithCsr } from './keys.js';
import { LogCapture } from './logs.js';
import { FLEET_BIN } from './process.js';
import { connect, mqttOptions, tryConnect, type Identity } from './mqtt.js';

export interface EnrolledDevice extends Identity {
  serial: string;
  fingerprint: string;
}

export interface TestFleet {
  service: RunningService;
  dir: string;
  token: string;
  ca: string;
  logs: LogCapture;
  api(path: string, request?: HttpRequest & { anonymous?: boolean }): Promise<HttpResult>;
  enroll(id: string): Promise<EnrolledDevice>;
  issuingCa(): Promise<CaSigner>;
  mqtt(identity?: Partial<Identity>, extra?: IClientOptions): IClientOptions;
  connect: (identity: Partial<Identity>, extra?: IClientOptions) => ReturnType<typeof connect>;
  tryConnect: (identity: Partial<Identity>, extra?: IClientOptions) => ReturnType<typeof tryConnect>;
  /** The value of fleet_refusals_total for a reason, read from /metrics. */
  refusals(reason: string): Promise<number>;
  close(): Promise<void>;
}

export interface FleetOptions {
  broker?: Partial<BrokerOptions>;
  clock?: Clock;
  dataDir?: string;
  /** postgres://… to run the registry on PostgreSQL. */
  database?: string;
  certificateLifetimeMs?: number;
  /** TLS session tickets on the MQTT listener (off by default, as in `fleet serve`). */
  sessionTickets?: boolean;
  issuingCaLifetimeMs?: number;
  rotationIntervalMs?: number;
  renewalSweepIntervalMs?: number;
  batchRetentionMs?: number;
  batchSweepIntervalMs?: number;
}

/** Registers a device and enrolls a fresh P-256 key for it through the public API. */
export async function enrollDevice(apiUrl: string, ca: string, token: string, id: string): Promise<EnrolledDevice> {
  const created = await httpsRequest(`${apiUrl}/v1/devices`, ca, { token, body: { id } });
  if (created.status !== 201) throw new Error(`create ${id}: ${created.status} ${created.body.toString()}`);
  const key = await ecKeyWithCsr();
  const enrolled = await httpsRequest(`${apiUrl}/v1/devices/${id}/certificates`, ca, { token, body: { csr: key.csrPem } });
  if (enrolled.status !== 201) throw new Error(`enroll ${id}: ${enrolled.status} ${enrolled.body.toString()}`);
  return { id, keyPem: key.keyPem, certPem: enrolled.json.certificate, serial: enrolled.json.serial, fingerprint: enrolled.json.fingerprint };
}

/** Adds an operator with the CLI, as an administrator would; returns its token. */
export async function addOperator(dataDir: string, name: string, roles: string[] = []): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [FLEET_BIN, 'operator', 'add', name, '--data', dataDir, ...roles.flatMap((r) => ['--role', r])]);
  return stdout.trim().split('\n').pop()!;
}

export interface StationFiles {
  name: string;
  keyPath: string;
  certPath: string;
  keyPem: string;
  certPem: string;
}

/** Adds a factory station with the CLI, as an administrator would; returns where its key and certificate are. */
export async function addStation(dataDir: string, name: string, roles: string[] = [], publicUrl?: string): Promise<StationFiles> {
  await promisify(execFile)(process.execPath, [FLEET_BIN, 'station', 'add', name, '--data', dataDir, ...roles.flatMap((r) => ['--role', r]), ...(publicUrl ? ['--public-url', publicUrl] : [])]);
  const keyPath = join(dataDir, 'stations', `${name}.key`);
  const certPath = join(dataDir, 'stations', `${name}.pem`);
  return { name, keyPath, certPath, keyPem: await readFile(keyPath, 'utf8'), certPem: await readFile(certPath, 'utf8') };
}

export async function startFleet(options: FleetOptions = {}): Promise<TestFleet> {
  const dir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'fleet-test-')));
  const logs = new LogCapture();
  const service = await startService({
    dataDir: dir,
    host: '127.0.0.1',
    mqttPort: 0,
    apiPort: 0,
    logLevel: 'debug',
    logDestination: logs,
    clock: options.clock,
    // Tests reconnect the same device at machine speed; throttling is tested where it is the point.
    broker: { abuse: { ...DEFAULT_BROKER_OPTIONS.abuse, perClientId: { ratePerSecond: 1000, burst: 1000 } }, ...options.broker },
    database: options.database,
    certificateLifetimeMs: options.certificateLifetimeMs,
    sessionTickets: options.sessionTickets,
    issuingCaLifetimeMs: options.issuingCaLifetimeMs,
    rotationIntervalMs: options.rotationIntervalMs,
    renewalSweepIntervalMs: options.renewalSweepIntervalMs,
    batchRetentionMs: options.batchRetentionMs,
    batchSweepIntervalMs: options.batchSweepIntervalMs,
  });
  const layout = dataLayout(dir);
  const token = (await readFile(layout.adminToken, 'utf8')).trim();
  const ca = await readFile(layout.pki.caBundle, 'utf8');

  const fleet: TestFleet = {
    service,
    dir,
    token,
    ca,
    logs,
    api: (path, request = {}) => httpsRequest(`${service.apiUrl}${path}`, ca, { ...request, token: request.anonymous ? request.token : (request.token ?? token) }),
    enroll: (id) => enrollDevice(service.apiUrl, ca, token, id),
    async issuingCa() {
      const pem = await readFile(layout.pki.issuingCert, 'utf8');
      return CaSigner.create(new x509.X509Certificate(pem), await importPrivateKey(await readFile(layout.pki.issuingKey, 'utf8')));
    },
    mqtt: (identity, extra) => mqttOptions(service.mqttPort, ca, identity, extra),
    connect: (identity, extra) => connect(mqttOptions(service.mqttPort, ca, identity, extra)),
    tryConnect: (identity, extra) => tryConnect(mqttOptions(service.mqttPort, ca, identity, extra)),
    async refusals(reason) {
      const text = (await fleet.api('/metrics', { anonymous: true })).body.toString();
      const line = text.split('\n').find((l) => l.startsWith('fleet_refusals_total{') && l.includes(`reason="${reason}"`));
      return line ? Number(line.split(' ').pop()) : NaN;
    },
    async close() {
      await service.close();
      if (!options.dataDir) await rm(dir, { recursive: true, force: true });
    },
  };
  return fleet;
}
