// Issuance from a CSR on one core: check the CSR, sign, record (one audited, durable
// transaction per certificate), as POST /v1/devices/{id}/certificates does minus HTTP.
// Measured in CPU time of this process; the requests are made before the clock starts, and
// a first WARM_UP of them is enrolled before it too: a fresh Node.js process compiles its hot
// code during its first thousand certificates, a service issues for months.
// Afterwards the CSR check and the build+sign stage run again alone over the same requests,
// so the figure splits into CSR, signature and the rest (record, group commit, the service
// around them).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pino from 'pino';
import { CaKeyring, DEFAULT_CA_ID } from '../provisioning/pki/keyring.js';
import { checkCsr } from '../provisioning/pki/csr.js';
import { Provisioning } from '../provisioning/service.js';
import { systemClock } from '../registry/clock.js';
import { InProcessEventBus } from '../registry/events.js';
import type { DeviceId } from '../registry/ids.js';
import { Registry } from '../registry/registry.js';
import { openSqliteStore } from '../registry/sqlite.js';
import { makeDeviceKey } from '../firmware-sim/identity.js';
import { dataLayout, initDataDir, recordInitialState } from './data-dir.js';

export interface IssuanceFigures {
  certificates: number;
  cpuMsPerCertificate: number;
  perCpuSecond: number;
  perWallSecond: number;
  /** CPU µs per certificate by stage; `rest` is the whole less the two measured alone. */
  stagesUs: { csr: number; sign: number; rest: number };
}

const cpuUsSince = (start: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(start);
  return used.user + used.system;
};

const IN_FLIGHT = 256;
const WARM_UP = 1000;

export async function issuanceBench(count: number): Promise<IssuanceFigures> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-issuance-'));
  try {
    const clock = systemClock;
    const layout = dataLayout(dir);
    await initDataDir(dir, clock);
    const store = await openSqliteStore(layout.registry);
    const registry = new Registry({ store, bus: new InProcessEventBus(), clock });
    await recordInitialState(registry, layout, clock);
    const keyring = await CaKeyring.load(layout.pki, await registry.authorities.list());
    const log = pino({ level: 'warn' }, new Writable({ write: (_c, _e, done) => done() }));
    const provisioning = new Provisioning({ certificateLifetimeMs: 30 * 86_400_000, backdateMs: 60_000, publicUrl: () => 'https://localhost:8443' }, { registry, keyring, issuing: { current: () => DEFAULT_CA_ID, signs: () => true }, clock, log });
    const actor = { kind: 'operator', id: 'bench' } as const;

    const requestsFor = async (prefix: string, n: number) => {
      const made: { id: DeviceId; csr: string }[] = [];
      for (let i = 0; i < n; i++) {
        const id = `${prefix}-${i}` as DeviceId;
        await registry.lifecycle.createDevice({ id }, actor);
        made.push({ id, csr: (await makeDeviceKey(id)).csrPem });
      }
      return made;
    };
    // As a factory line's batch or a busy API sees them: many requests in flight at once, so
    // their records share durable commits (group commit).
    const enrollAll = async (batch: readonly { id: DeviceId; csr: string }[]) => {
      let next = 0;
      const lane = async () => {
        while (next < batch.length) {
          const { id, csr } = batch[next++]!;
          await provisioning.enroll(id, csr, actor);
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
    };
    await enrollAll(await requestsFor('warm', WARM_UP));
    const requests = await requestsFor('issue', count);

    const cpu = process.cpuUsage();
    const started = performance.now();
    await enrollAll(requests);
    const wallMs = performance.now() - started;
    const cpuMs = cpuUsSince(cpu) / 1000;

    // The stages alone, over the same requests: nothing is recorded.
    let stage = process.cpuUsage();
    const keys = requests.map((r) => checkCsr(r.csr));
    const csrUs = cpuUsSince(stage) / count;
    const signer = keyring.get(DEFAULT_CA_ID)!;
    const now = clock().getTime();
    const validity = { notBefore: new Date(now - 60_000), notAfter: new Date(now + 30 * 86_400_000) };
    stage = process.cpuUsage();
    for (const [i, key] of keys.entries()) signer.issueDevice(requests[i]!.id, key.spki, validity, provisioning.crlUrl(DEFAULT_CA_ID));
    const signUs = cpuUsSince(stage) / count;
    await store.close();
    return {
      certificates: count,
      cpuMsPerCertificate: cpuMs / count,
      perCpuSecond: count / (cpuMs / 1000),
      perWallSecond: count / (wallMs / 1000),
      stagesUs: { csr: csrUs, sign: signUs, rest: (cpuMs * 1000) / count - csrUs - signUs },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The same figures from a Node.js process of its own, as the service would issue: the
 * benchmark's own process holds a whole simulated fleet, whose heap slows everything it runs.
 */
export async function issuanceBenchInOwnProcess(count: number): Promise<IssuanceFigures> {
  const { stdout } = await promisify(execFile)(process.execPath, [fileURLToPath(import.meta.url), String(count)]);
  return JSON.parse(stdout) as IssuanceFigures;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await issuanceBench(Number(process.argv[2] ?? 10_000))));
}
