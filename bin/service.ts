// The composition root: builds every part from the data directory and wires them together.
// `fleet serve` and the end-to-end tests both start the service through here.
import { randomUUID } from 'node:crypto';
import pino, { type DestinationStream, type Logger } from 'pino';
import { Registry as MetricsRegistry, collectDefaultMetrics } from 'prom-client';
import { DeviceBroker, type BrokerOptions } from '../broker/broker.js';
import { listenMutualTls } from '../broker/listener.js';
import { apiTlsContext, buildApi } from '../provisioning/api/app.js';
import { CrlRevocations } from '../provisioning/crl-import.js';
import { Crls } from '../provisioning/crl.js';
import { loadServerCredentials } from '../provisioning/pki/hierarchy.js';
import { CaKeyring, DEFAULT_CA_ID } from '../provisioning/pki/keyring.js';
import { Provisioning } from '../provisioning/service.js';
import { pemDirectory, Trust } from '../provisioning/trust.js';
import { systemClock, type Clock } from '../registry/clock.js';
import { InProcessEventBus } from '../registry/events.js';
import { FleetGraph } from '../registry/graph.js';
import { openStore } from '../registry/open.js';
import { Registry } from '../registry/registry.js';
import { dataLayout, initDataDir, recordInitialState } from './data-dir.js';
import { brokerRegistry, renewalPort } from './ports.js';
import { Reloader, trustDir } from './reload.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** How often renewals past their grace period are looked for (grace periods are a minute or more). */
const RENEWAL_SWEEP_MS = 30_000;

export interface ServiceOptions {
  dataDir: string;
  /** postgres://… for PostgreSQL; absent: the SQLite file in the data directory. */
  database?: string;
  host: string;
  mqttPort: number;
  apiPort: number;
  /** Base URL devices use for the API (CRL distribution points); derived from host and port if absent. */
  publicUrl?: string;
  logLevel?: string;
  /** Where logs go; stdout when absent. */
  logDestination?: DestinationStream;
  clock?: Clock;
  certificateLifetimeMs?: number;
  /** The longest a break-glass grant may last. */
  breakGlassMaxMs?: number;
  broker?: Partial<BrokerOptions>;
}

export interface RunningService {
  mqttPort: number;
  apiPort: number;
  apiUrl: string;
  dataDir: string;
  log: Logger;
  broker: DeviceBroker;
  graph: FleetGraph;
  reloader: Reloader;
  close(): Promise<void>;
}

export const DEFAULT_BROKER_OPTIONS: BrokerOptions = Object.freeze({
  maxPacketBytes: 128 * 1024,
  publish: Object.freeze({ ratePerSecond: 100, burst: 200, maxBacklogMs: 10_000 }),
  abuse: Object.freeze({
    // A device reconnecting after a drop needs a second try at once; more than that is a loop.
    perClientId: Object.freeze({ ratePerSecond: 1, burst: 2 }),
    // Many devices may share an address behind NAT.
    perAddress: Object.freeze({ ratePerSecond: 200, burst: 400 }),
    ban: Object.freeze({ afterThrottled: 10, windowMs: 60_000, durationMs: 5 * 60_000 }),
  }),
  keepalive: Object.freeze({ minSeconds: 5, maxSeconds: 1200 }),
  maxSubscriptions: 50,
  cache: Object.freeze({ maxEntries: 100_000, ttlMs: 5 * 60_000, unregisteredTtlMs: 5_000 }),
  handshakeTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
});

/** The host to put in URLs: a wildcard address is no address to dial, so localhost. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

export async function startService(options: ServiceOptions): Promise<RunningService> {
  const clock = options.clock ?? systemClock;
  // Asynchronous writes: a CONNECT storm logs a line per device, and a synchronous write per
  // line would stall the event loop on the pipe; lines written meanwhile go out together.
  // close() flushes what is left.
  const log = pino({ level: options.logLevel ?? 'info', base: { service: 'fleet' } }, options.logDestination ?? pino.destination({ dest: 1, sync: false }));
  const layout = dataLayout(options.dataDir);
  if (await initDataDir(layout.dir, clock)) log.info({ event: 'data_dir_created', dir: layout.dir }, 'created data directory with a new dev PKI');

  const store = await openStore(options.database ?? layout.registry);
  const bus = new InProcessEventBus();
  const registry = new Registry({ store, bus, clock });
  await recordInitialState(registry, layout, clock);
  const keyring = await CaKeyring.load(layout.pki, await registry.authorities.list());
  const server = await loadServerCredentials(layout.pki, keyring.get(DEFAULT_CA_ID)!, clock);
  const metrics = new MetricsRegistry();
  collectDefaultMetrics({ register: metrics });

  const graph = await FleetGraph.build(store);
  bus.subscribe((event) => graph.apply(event));

  let apiPort = options.apiPort;
  const publicUrl = () => options.publicUrl ?? `https://${urlHost(options.host)}:${apiPort}`;
  const certificateLifetimeMs = options.certificateLifetimeMs ?? 30 * DAY_MS;
  const provisioning = new Provisioning({ certificateLifetimeMs, backdateMs: 60_000, publicUrl }, { registry, keyring, clock, log });

  const crlRevocations = new CrlRevocations();
  const brokerOptions: BrokerOptions = { ...DEFAULT_BROKER_OPTIONS, id: randomUUID(), ...options.broker };
  const broker = await DeviceBroker.create(brokerOptions, {
    registry: brokerRegistry(registry, brokerOptions.id!, crlRevocations),
    events: bus,
    clock,
    log,
    metrics,
    renewal: renewalPort(registry, provisioning),
  });

  const extraTrust = () => pemDirectory(trustDir(layout), (file, problem) => log.error({ event: 'trust_file_ignored', file, problem }, 'a file in pki/trust.d/ is not a certificate'));
  const trust = await Trust.load(() => registry.authorities.list(), extraTrust, layout.pki.caBundle);
  const listener = await listenMutualTls(broker, { key: server.keyPem, cert: server.certPem, ca: trust.bundles.clientTrustPem }, { host: options.host, port: options.mqttPort }, brokerOptions.handshakeTimeoutMs);

  const crls = new Crls(keyring, (id) => registry.authorities.crlEntries(id), async (id) => (await registry.authorities.get(id)).parentId, clock, log);
  await crls.start((await registry.authorities.list()).filter((c) => !c.external).map((c) => c.id));
  bus.subscribe((event) => crls.apply(event));

  // Trust, the server certificate and operators' CRLs reload on change and on request; a
  // reload's failure is logged, not the change's (which is already durable).
  const reloader = new Reloader({
    layout,
    trust,
    listener,
    broker,
    registry,
    crlRevocations,
    api: { setTrust: (ca) => apiTls.setTrust(ca), setServerCredentials: (credentials) => apiTls.setServerCredentials(credentials) },
    log,
  });
  // The API asks callers for a client certificate (stations, devices renewing), trusted as
  // the broker trusts devices.
  const apiTlsMaterial = { key: server.keyPem, cert: server.certPem, ca: trust.bundles.clientTrustPem };
  const api = await buildApi(
    { tls: apiTlsMaterial },
    {
      provisioning,
      registry,
      graph,
      crls,
      caBundle: () => trust.bundles.caBundlePem,
      metrics,
      presence: broker,
      broker,
      reload: () => reloader.reloadAll(),
      breakGlassMaxMs: options.breakGlassMaxMs ?? 4 * 60 * 60 * 1000,
      renewalWindowMs: async (caId) => (await provisioning.policyOf(caId)).renewalWindowMs,
      defaultCertificateLifetimeMs: certificateLifetimeMs,
      clock,
      log,
    },
  );
  const apiTls = apiTlsContext(api, apiTlsMaterial);

  bus.subscribe(async (event) => {
    if (event.type !== 'ca.created' && event.type !== 'ca.status') return;
    await reloader.reloadTrust().catch((err: unknown) => log.error({ err, event: 'trust_reload_failed' }, 'trust bundle could not be rebuilt'));
  });
  await reloader.reloadCrls();
  reloader.watch();

  const refreshExpiring = () =>
    store.certificates.count({ status: 'ACTIVE', notAfterBefore: new Date(clock().getTime() + 30 * DAY_MS) }).then(
      (n) => broker.telemetry.expiringCertificates(n),
      (err: unknown) => log.warn({ err }, 'expiring certificates not counted'),
    );
  await refreshExpiring();
  const expiringTimer = setInterval(() => void refreshExpiring(), 60_000);
  expiringTimer.unref();
  // Renewals whose successor was never seen: their predecessors retire when the grace ends.
  const retireOverdue = () =>
    registry.lifecycle.retireOverdue({ kind: 'system', id: 'renewal' }, clock()).catch((err: unknown) => log.error({ err, event: 'renewal_sweep_failed' }, 'overdue renewals not settled'));
  const renewalTimer = setInterval(() => void retireOverdue(), RENEWAL_SWEEP_MS);
  renewalTimer.unref();

  await api.listen({ host: options.host, port: options.apiPort });
  apiPort = (api.server.address() as { port: number }).port;

  log.info(
    { event: 'listening', mqtt: `mqtts://${urlHost(options.host)}:${listener.port}`, api: publicUrl(), dataDir: layout.dir, registry: store.dialect, graph: graph.size },
    'fleet service ready',
  );

  let closing: Promise<void> | undefined;
  return {
    mqttPort: listener.port,
    apiPort,
    apiUrl: `https://${urlHost(options.host)}:${apiPort}`,
    dataDir: layout.dir,
    log,
    broker,
    graph,
    reloader,
    close: () =>
      (closing ??= (async () => {
        clearInterval(expiringTimer);
        clearInterval(renewalTimer);
        reloader.stop();
        await api.close();
        await listener.close();
        await broker.close();
        crls.stop();
        await bus.close();
        await store.close();
        await new Promise<void>((resolve) => log.flush(() => resolve()));
      })()),
  };
}
