// `npm run bench -- registry`: the registry at fleet scale. Seeds 100,000 devices and
// 200,000 certificates into a real SQLite registry, then measures the fleet graph's build
// time and memory, blast-radius queries, and a cascading revocation of a CA with 10,000
// certificates while devices under it are connected (acknowledgement, and the last session
// closed).
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { ApiClient } from '../firmware-sim/api-client.js';
import { enrollFleet } from '../firmware-sim/bench/fleet.js';
import { closed, connectAll } from '../firmware-sim/bench/load.js';
import { deviceIds } from '../firmware-sim/run.js';
import { FleetGraph } from '../registry/graph.js';
import { openSqliteStore } from '../registry/sqlite.js';
import { dataLayout } from './data-dir.js';
import { startService } from './service.js';

export interface RegistryBenchOptions {
  devices: number;
  certificatesPerDevice: number;
  cascadeCertificates: number;
  connected: number;
  say: (line: string) => void;
}

const silent = new Writable({ write: (_chunk, _encoding, done) => done() });
const gc = () => (globalThis as { gc?: () => void }).gc?.();
const heapMiB = () => process.memoryUsage().heapUsed / 2 ** 20;
const ms = (since: number) => performance.now() - since;

async function startQuiet(dir: string) {
  return startService({ dataDir: dir, host: '127.0.0.1', mqttPort: 0, apiPort: 0, logDestination: silent, logLevel: 'warn', broker: { publish: { ratePerSecond: 1000, burst: 1000, maxBacklogMs: 10_000 } } });
}

/** Rows straight into SQLite: seeding is scaffolding, not what is measured. */
function seed(path: string, o: RegistryBenchOptions, cas: string[], cascadeDevices: number): void {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  const now = Date.now();
  const device = db.prepare("INSERT INTO devices (id, status, attributes, gateway, gateway_id, created_at, updated_at) VALUES (?, 'ACTIVE', '{}', 0, NULL, ?, ?)");
  const cert = db.prepare(
    "INSERT INTO certificates (serial, fingerprint, public_key_sha256, device_id, ca_id, not_before, not_after, status, pem, created_at, revoked_at, revocation_reason) VALUES (?, ?, ?, ?, ?, ?, ?, 'ACTIVE', '', ?, NULL, NULL)",
  );
  const hex = (bytes: number) => randomBytes(bytes).toString('hex');
  db.transaction(() => {
    for (let i = 0; i < o.devices; i++) {
      const id = `bulk-${String(i).padStart(7, '0')}`;
      device.run(id, now, now);
      for (let c = 0; c < o.certificatesPerDevice; c++) cert.run(hex(16), hex(32), hex(32), id, cas[(i + c) % cas.length], now, now + 30 * 86_400_000, now);
      if (i < o.cascadeCertificates - cascadeDevices) cert.run(hex(16), hex(32), hex(32), id, 'cascade', now, now + 30 * 86_400_000, now);
    }
  })();
  db.close();
}

export async function registryBench(o: RegistryBenchOptions) {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-registry-bench-'));
  const results: Record<string, number | string> = {};
  try {
    // Real CAs and real, connectable devices under the CA that will be revoked.
    let service = await startQuiet(dir);
    const layout = dataLayout(dir);
    const token = (await readFile(layout.adminToken, 'utf8')).trim();
    const ca = await readFile(layout.pki.caBundle, 'utf8');
    let api = new ApiClient({ baseUrl: service.apiUrl, ca, token });
    const cas = ['default'];
    for (let i = 0; i < 10; i++) cas.push((await api.createCa(`plant-${i}`)).id);
    await api.createCa('cascade');
    o.say(`enrolling ${o.connected} devices under the CA to revoke`);
    const enrolled = await enrollFleet(api, deviceIds('cascade', o.connected), ca, 16, () => undefined, 'cascade');
    await service.close();

    o.say(`seeding ${o.devices} devices and ${o.devices * o.certificatesPerDevice + o.cascadeCertificates - o.connected} certificates`);
    seed(layout.registry, o, cas, o.connected);

    const store = await openSqliteStore(layout.registry);
    gc();
    const heapBefore = heapMiB();
    let t = performance.now();
    const graph = await FleetGraph.build(store);
    results.graphBuildMs = ms(t);
    gc();
    results.graphHeapMiB = heapMiB() - heapBefore;
    results.graphNodes = graph.size.nodes;
    results.graphEdges = graph.size.edges;
    t = performance.now();
    const cascadeRadius = graph.blastRadius('cascade')!;
    results.blastRadiusCascadeMs = ms(t);
    results.blastRadiusCascadeCertificates = cascadeRadius.certificates.total;
    t = performance.now();
    const rootRadius = graph.blastRadius('root')!;
    results.blastRadiusRootMs = ms(t);
    results.blastRadiusRootCertificates = rootRadius.certificates.total;
    results.blastRadiusRootDevices = rootRadius.devices.total;
    await store.close();

    t = performance.now();
    service = await startQuiet(dir);
    results.serviceStartMs = ms(t);
    api = new ApiClient({ baseUrl: service.apiUrl, ca, token });
    const mqttUrl = `mqtts://127.0.0.1:${service.mqttPort}`;
    const { connected } = await connectAll(enrolled, mqttUrl, 64);
    o.say(`connected ${connected.length}; revoking the CA`);
    const closes = connected.map(closed);
    t = performance.now();
    const revoked = await api.revokeCa('cascade', 'cACompromise');
    results.cascadeAckMs = ms(t);
    results.cascadeRevokedCertificates = revoked.revoked.certificates;
    const closedAt = await Promise.all(closes);
    results.cascadeLastSessionClosedMs = Math.max(...closedAt) - t;
    results.cascadeSessionsClosed = closedAt.length;
    await service.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}
