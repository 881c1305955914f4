// `fleet` subcommands. Parsing only: each command hands a validated, frozen config to the
// part that does the work, and failures end with a message and a non-zero exit code.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSecretFile } from '../provisioning/pki/keys.js';
import { CaKeyring } from '../provisioning/pki/keyring.js';
import { createStation } from '../provisioning/stations.js';
import { systemClock } from '../registry/clock.js';
import { CodedError } from '../registry/errors.js';
import { InProcessEventBus } from '../registry/events.js';
import { openStore } from '../registry/open.js';
import { BusUnavailableError, NodeNameInUseError } from '../registry/redis-bus.js';
import { LockUnavailableError } from '../registry/redis-lock.js';
import { Registry } from '../registry/registry.js';
import { formatReport } from '../registry/reports.js';
import { pemDirectory, trustBundles } from '../provisioning/trust.js';
import { ALL_ROLES, assignable, isRole, type Role } from '../registry/roles.js';
import { dataLayout, DataDirError, initDataDir, recordInitialState } from './data-dir.js';
import { trustDir } from './reload.js';
import { DEFAULT_BATCH_RETENTION_MS, DEFAULT_BREAK_GLASS_MAX_MS, DEFAULT_BROKER_OPTIONS, defaultNodeName, startService } from './service.js';
import { isWorker, leaveCluster, runPrimary, workerCount, workerNodeName } from './workers.js';

const USAGE = `usage:
  fleet init   [--data DIR] [--database postgres://…] [--issuing-ca-days 1826]
  fleet serve  [--data DIR] [--database postgres://…] [--mqtt-port 8883] [--api-port 8443]
               [--issuing-ca-days 1826]
               [--host 127.0.0.1] [--public-url URL] [--log-level info]
               [--redis redis://…] [--node-name NAME] [--workers N|auto]
               [--cache-ttl 300] [--offline-ttl 86400]
               [--publish-rate 100] [--publish-burst 200] [--max-packet-bytes 131072]
               [--connect-rate 1] [--connect-burst 2]
               [--address-connect-rate 200] [--address-connect-burst 400]
               [--tls-session-tickets] [--break-glass-max 14400]
               [--batch-retention-days 30]
  fleet report [--data DIR] [--database postgres://…] [--days 30] [--json]
  fleet operator add NAME [--role operator]… [--data DIR] [--database postgres://…]
  fleet station add NAME [--role provisioner]… [--days 365] [--public-url URL]
              [--data DIR] [--database postgres://…]
  fleet diagnose CERT.pem [--client-id ID] [--key KEY.pem] [--data DIR] [--database URL]
  fleet sim   [--scenario storm|telemetry|rotation|revocation|churn] [--devices N]
              [--rate MSG_PER_S] [--duration S] [--qos 0|1] [--concurrency N] [--revoke K]
              [--drop-interval S] [--drain S] [--enroll api|claim] [--claim-rate REQ_PER_S]
              [--renew mqtt|https|api[,…]] [--report-dir DIR] [--json]
              [--data DIR] [--api URL] [--mqtt URL] [--token T] [--ca PEM] [--prefix ID]

  init   create DIR (default ./data) with a dev PKI, a registry and an operator token;
         the issuing CA lives --issuing-ca-days (five years by default), and each one
         rotation prepares after it lives as long
  serve  run the MQTT broker (mutual TLS) and the provisioning API (HTTPS);
         initializes DIR first if it does not exist. The registry is DIR/registry.db
         (SQLite) unless --database names a PostgreSQL database. Per device: publishes
         per second sustained and in a burst, the largest MQTT packet accepted, and
         CONNECTs per second sustained and in a burst; per source address, CONNECTs
         per second (raise it for load tests from one host, or many devices behind NAT);
         the longest a break-glass grant may last, in seconds. --tls-session-tickets
         lets devices resume TLS sessions (off by default: the tickets cost more than
         they save for devices that stay connected). --batch-retention-days: how long
         a factory batch line is remembered, so that a retry with the same
         Idempotency-Key gets the same certificate; forgotten after that.
         Cluster: --redis makes this process a node of a cluster whose nodes share MQTT
         state and registry events through Redis (with --database, the registry in
         PostgreSQL); --node-name names it in logs and metrics (default host-pid);
         --workers N runs N such nodes in this machine's processes on the same ports
         (auto: one per core; needs --redis). --cache-ttl: seconds a registry verdict
         is trusted without an event; --offline-ttl: seconds a QoS 1 message waits in
         Redis for an offline device
  report the fleet report: expiring and old certificates, active certificates under a
         revoked or expired CA, shared certificates and conflicting client ids
  operator add  create an operator with an API token of its own (printed once) and its
         roles (admin, operator, provisioner, keygen, auditor; default operator); a
         break-glass grant needs a second operator to approve it
  station add  create a factory station: a key and a client certificate of its own,
         written to DIR/stations/NAME.key (mode 0600) and NAME.pem, with its roles
         (provisioner, keygen, auditor; default provisioner); it calls the API over
         mutual TLS. --public-url is the API URL its CRL distribution point names
  diagnose  walk the broker's admission checks offline for a certificate, printing each
         step's verdict and ending with the one that decides
  sim    run a load scenario with N virtual devices that enroll through the API (or by
         claim: a claim batch created for the run, paced under its rate limit), connect
         over mutual TLS and renew (over their MQTT session, over HTTPS with their
         certificate, or through the API) like firmware; prints a summary, writes JSON and
         HTML reports, and exits 1 when the scenario's pass criteria fail`;

class UsageError extends Error {}

function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function positive(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} must be a positive number, got ${value}`);
  return n;
}

function port(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`${flag} must be a port number (0–65535), got ${value}`);
  return n;
}

const DAY_MS = 24 * 60 * 60 * 1000;

function issuingLifetime(days: string | undefined): number | undefined {
  return days === undefined ? undefined : positive(days, 0, '--issuing-ca-days') * DAY_MS;
}

/** Creates the data directory if absent and brings the registry up to date with it. */
async function prepare(data: string, database: string | undefined, issuingLifetimeMs: number | undefined): Promise<{ layout: ReturnType<typeof dataLayout>; created: boolean }> {
  const layout = dataLayout(data);
  const created = await initDataDir(layout.dir, systemClock, { issuingLifetimeMs });
  // The registry learns the PKI's CAs now (idempotent: serve does the same at every start).
  const store = await openStore(database ?? layout.registry);
  try {
    await recordInitialState(new Registry({ store, bus: new InProcessEventBus(), clock: systemClock }), layout, systemClock);
  } finally {
    await store.close();
  }
  return { layout, created };
}

async function init(args: string[]): Promise<number> {
  const values = parse(args, { data: { type: 'string', default: './data' }, database: { type: 'string' }, 'issuing-ca-days': { type: 'string' } });
  const { layout, created } = await prepare(values.data, values.database, issuingLifetime(values['issuing-ca-days']));
  if (created) {
    console.log(`created ${layout.dir}
  trust anchor     ${layout.pki.rootCert}
  CA bundle        ${layout.pki.caBundle}
  server cert      ${layout.pki.serverCert}
  registry         ${layout.registry}
  operator token   ${layout.adminToken} (mode 0600)`);
  } else {
    console.log(`${layout.dir} is already initialized; nothing was changed`);
  }
  return 0;
}

async function serve(args: string[]): Promise<number> {
  const values = parse(args, {
    data: { type: 'string', default: './data' },
    database: { type: 'string' },
    'mqtt-port': { type: 'string' },
    'api-port': { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    'public-url': { type: 'string' },
    'log-level': { type: 'string', default: 'info' },
    'publish-rate': { type: 'string' },
    'publish-burst': { type: 'string' },
    'max-packet-bytes': { type: 'string' },
    'connect-rate': { type: 'string' },
    'connect-burst': { type: 'string' },
    'address-connect-rate': { type: 'string' },
    'address-connect-burst': { type: 'string' },
    'tls-session-tickets': { type: 'boolean', default: false },
    'issuing-ca-days': { type: 'string' },
    'break-glass-max': { type: 'string' },
    'batch-retention-days': { type: 'string' },
    redis: { type: 'string' },
    'node-name': { type: 'string' },
    workers: { type: 'string' },
    'cache-ttl': { type: 'string' },
    'offline-ttl': { type: 'string' },
  });
  if (values.redis !== undefined && !/^rediss?:\/\//.test(values.redis)) throw new UsageError(`--redis must be a redis:// or rediss:// URL, got ${values.redis}`);
  if (values['node-name'] !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(values['node-name'])) throw new UsageError('--node-name is 1–64 characters of A–Z, a–z, 0–9, ".", "_", "-"');
  if (values.workers !== undefined && !isWorker()) {
    const count = workerCount(values.workers);
    if (count === undefined) throw new UsageError(`--workers must be a whole number from 1 to 1024, or auto, got ${values.workers}`);
    if (values.redis === undefined) throw new UsageError('--workers needs --redis: the workers share MQTT state and registry events through it');
    // Once, before any worker starts: the PKI, migrations and the registry's initial state.
    await prepare(values.data, values.database, issuingLifetime(values['issuing-ca-days']));
    return runPrimary(count, (event) => console.log(JSON.stringify({ service: 'fleet', time: Date.now(), ...event })));
  }
  const defaults = DEFAULT_BROKER_OPTIONS;
  const service = await startService({
    dataDir: values.data,
    database: values.database,
    redis: values.redis,
    nodeName: workerNodeName(values['node-name'] ?? defaultNodeName()) ?? values['node-name'],
    sharedState: values['offline-ttl'] === undefined ? undefined : { offlineTtlSeconds: positive(values['offline-ttl'], 0, '--offline-ttl') },
    host: values.host,
    mqttPort: port(values['mqtt-port'], 8883, '--mqtt-port'),
    apiPort: port(values['api-port'], 8443, '--api-port'),
    publicUrl: values['public-url'],
    logLevel: values['log-level'],
    sessionTickets: values['tls-session-tickets'],
    issuingCaLifetimeMs: issuingLifetime(values['issuing-ca-days']),
    breakGlassMaxMs: positive(values['break-glass-max'], DEFAULT_BREAK_GLASS_MAX_MS / 1000, '--break-glass-max') * 1000,
    batchRetentionMs: positive(values['batch-retention-days'], DEFAULT_BATCH_RETENTION_MS / DAY_MS, '--batch-retention-days') * DAY_MS,
    broker: {
      cache: { ...defaults.cache, ttlMs: positive(values['cache-ttl'], defaults.cache.ttlMs / 1000, '--cache-ttl') * 1000 },
      maxPacketBytes: positive(values['max-packet-bytes'], defaults.maxPacketBytes, '--max-packet-bytes'),
      publish: {
        ...defaults.publish,
        ratePerSecond: positive(values['publish-rate'], defaults.publish.ratePerSecond, '--publish-rate'),
        burst: positive(values['publish-burst'], defaults.publish.burst, '--publish-burst'),
      },
      abuse: {
        ...defaults.abuse,
        perClientId: {
          ratePerSecond: positive(values['connect-rate'], defaults.abuse.perClientId.ratePerSecond, '--connect-rate'),
          burst: positive(values['connect-burst'], defaults.abuse.perClientId.burst, '--connect-burst'),
        },
        perAddress: {
          ratePerSecond: positive(values['address-connect-rate'], defaults.abuse.perAddress.ratePerSecond, '--address-connect-rate'),
          burst: positive(values['address-connect-burst'], defaults.abuse.perAddress.burst, '--address-connect-burst'),
        },
      },
    },
  });
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  service.log.info({ event: 'stopping' }, 'shutting down');
  // A dependency that no longer answers (Redis, PostgreSQL) must not keep a stopping process alive.
  setTimeout(() => {
    service.log.error({ event: 'stop_timeout' }, 'shutdown did not finish in time; exiting');
    service.log.flush();
    process.exit(1);
  }, 15_000).unref();
  await service.close();
  leaveCluster();
  return 0;
}

async function report(args: string[]): Promise<number> {
  const values = parse(args, {
    data: { type: 'string', default: './data' },
    database: { type: 'string' },
    days: { type: 'string', default: '30' },
    json: { type: 'boolean', default: false },
  });
  const days = positive(values.days, 30, '--days');
  const fleet = await withRegistry(values.data, values.database, (registry) => registry.reports.fleet(days));
  console.log(values.json ? JSON.stringify(fleet, null, 2) : formatReport(fleet));
  return 0;
}

/** Opens the registry of a data directory (or the given database) for a CLI command. */
async function withRegistry<T>(data: string, database: string | undefined, work: (registry: Registry, layout: ReturnType<typeof dataLayout>) => Promise<T>): Promise<T> {
  const layout = dataLayout(data);
  if (!database && !existsSync(layout.registry)) throw new DataDirError(`no registry at ${layout.registry}; run fleet init or give --database`);
  const store = await openStore(database ?? layout.registry);
  try {
    return await work(new Registry({ store, bus: new InProcessEventBus(), clock: systemClock }), layout);
  } finally {
    await store.close();
  }
}

const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
const CLI_ACTOR = { kind: 'system', id: 'cli' } as const;

/** Roles given on the command line, checked against the table for this kind of holder. */
function rolesOf(given: string[] | undefined, fallback: Role, holder: 'operator' | 'station'): string[] {
  const roles = given && given.length > 0 ? [...new Set(given)] : [fallback];
  const bad = roles.filter((r) => !isRole(r) || !assignable(r, holder));
  if (bad.length > 0) throw new UsageError(`not a ${holder} role: ${bad.join(', ')} (${holder}s may have: ${ALL_ROLES.filter((r) => assignable(r, holder)).join(', ')})`);
  return roles;
}

async function operator(args: string[]): Promise<number> {
  const [action, name, ...rest] = args;
  if (action !== 'add' || !name || !NAME_RE.test(name)) throw new UsageError('fleet operator add NAME (1–64 characters of A–Z, a–z, 0–9, ".", "_", "-")');
  const values = parse(rest, { data: { type: 'string', default: './data' }, database: { type: 'string' }, role: { type: 'string', multiple: true } });
  const roles = rolesOf(values.role, 'operator', 'operator');
  const { token } = await withRegistry(values.data, values.database, (registry) => registry.operators.add(name, roles, CLI_ACTOR));
  console.log(`operator ${name} created with roles ${roles.join(', ')}; its token (shown once, keep it secret):\n${token}`);
  return 0;
}

async function station(args: string[]): Promise<number> {
  const [action, name, ...rest] = args;
  if (action !== 'add' || !name || !NAME_RE.test(name)) throw new UsageError('fleet station add NAME (1–64 characters of A–Z, a–z, 0–9, ".", "_", "-")');
  const values = parse(rest, {
    data: { type: 'string', default: './data' },
    database: { type: 'string' },
    role: { type: 'string', multiple: true },
    days: { type: 'string', default: '365' },
    'public-url': { type: 'string', default: 'https://localhost:8443' },
  });
  const roles = rolesOf(values.role, 'provisioner', 'station');
  const days = positive(values.days, 365, '--days');
  const files = await withRegistry(values.data, values.database, async (registry, layout) => {
    const dir = join(layout.dir, 'stations');
    const paths = { key: join(dir, `${name}.key`), cert: join(dir, `${name}.pem`) };
    if (existsSync(paths.key) || existsSync(paths.cert)) throw new DataDirError(`${paths.key} or ${paths.cert} exists already; refusing to overwrite`);
    const keyring = await CaKeyring.load(layout.pki, await registry.authorities.list());
    const created = await createStation({ name, roles, lifetimeMs: days * 86_400_000, publicUrl: values['public-url'] }, { registry, keyring, clock: systemClock }, CLI_ACTOR);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeSecretFile(paths.key, created.keyPem);
    await writeSecretFile(paths.cert, created.certificatePem);
    return { ...paths, serial: created.station.serial, notAfter: created.station.notAfter };
  });
  console.log(`station ${name} created with roles ${roles.join(', ')}
  key          ${files.key} (mode 0600)
  certificate  ${files.cert}
  serial       ${files.serial}, valid until ${files.notAfter.toISOString()}`);
  return 0;
}

async function diagnose(args: string[]): Promise<number> {
  const [certPath, ...rest] = args;
  if (!certPath || certPath.startsWith('--')) throw new UsageError('fleet diagnose CERT.pem [--client-id ID] [--key KEY.pem]');
  const values = parse(rest, { 'client-id': { type: 'string' }, key: { type: 'string' }, data: { type: 'string', default: './data' }, database: { type: 'string' } });
  const { diagnose: walk, formatDiagnosis } = await import('../broker/diagnose.js');
  const { readFile } = await import('node:fs/promises');
  const diagnosis = await withRegistry(values.data, values.database, async (registry, layout) =>
    walk(
      {
        certificatePem: await readFile(certPath, 'utf8'),
        keyPem: values.key ? await readFile(values.key, 'utf8') : undefined,
        clientId: values['client-id'],
      },
      {
        // What the broker trusts for client certificates: revoked CAs included (their devices
        // are refused as revoked, not as strangers), operators' CAs and pki/trust.d/.
        trustPem: trustBundles(await registry.authorities.list(), await pemDirectory(trustDir(layout))).clientTrustPem,
        now: systemClock,
        registry,
      },
    ),
  );
  console.log(formatDiagnosis(diagnosis));
  return diagnosis.verdict.ok ? 0 : 1;
}

async function sim(args: string[]): Promise<number> {
  const { runSimCommand } = await import('../firmware-sim/command.js');
  return runSimCommand(args);
}

/**
 * A failure the user fixes on their machine, not a crash: a file named on the command line
 * that cannot be opened, a port another program holds.
 */
function environmentProblem(error: unknown): string | undefined {
  const { code, path, syscall, address, port } = error as NodeJS.ErrnoException & { address?: string; port?: number };
  if (syscall === 'listen' && code) return `cannot listen on ${address}:${port} (${code})`;
  if (path && (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'ENOTDIR')) return `cannot open ${path} (${code})`;
  return undefined;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  try {
    switch (command) {
      case 'init':
        return await init(args);
      case 'serve':
        return await serve(args);
      case 'sim':
        return await sim(args);
      case 'report':
        return await report(args);
      case 'operator':
        return await operator(args);
      case 'station':
        return await station(args);
      case 'diagnose':
        return await diagnose(args);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`fleet: ${error.message}\n\n${USAGE}`);
      return 2;
    }
    if (error instanceof DataDirError || error instanceof NodeNameInUseError || error instanceof BusUnavailableError || error instanceof LockUnavailableError) {
      console.error(`fleet: ${error.message}`);
      return 1;
    }
    if (error instanceof CodedError) {
      console.error(`fleet: ${error.code}: ${error.message}`);
      return 1;
    }
    const problem = environmentProblem(error);
    if (problem) {
      console.error(`fleet: ${problem}`);
      return 1;
    }
    throw error;
  }
}
