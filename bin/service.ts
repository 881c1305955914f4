// The composition root: builds every part from the data directory and wires them together.
// `fleet serve` and the end-to-end tests both start the service through here.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import pino, { type DestinationStream, type Logger } from 'pino';
import { bufferedStdout } from './log-destination.js';
import { Registry as MetricsRegistry, collectDefaultMetrics } from 'prom-client';
import { DeviceBroker, type BrokerOptions } from '../broker/broker.js';
import { DEFAULT_SHARED_STATE_LIMITS, redisMqttState, type SharedMqttState, type SharedStateLimits } from '../broker/cluster.js';
import { redisSharedLimits, type SharedLimits } from '../broker/cluster-limits.js';
import { listenMutualTls } from '../broker/listener.js';
import { apiTlsContext, buildApi } from '../provisioning/api/app.js';
import { CrlRevocations } from '../provisioning/crl-import.js';
import { Crls } from '../provisioning/crl.js';
import { loadServerCredentials, reissueServerCertificate, serverIssuedBy } from '../provisioning/pki/hierarchy.js';
import { ecdsa, nativeEcdsaUnavailable } from '../provisioning/pki/ecdsa-verify.js';
import { opensslErrorsUnavailable } from '../registry/openssl-errors.js';
import { CaKeyring } from '../provisioning/pki/keyring.js';
import { ClaimProvisioning } from '../provisioning/claims/service.js';
import { CaRotator } from '../provisioning/rotation.js';
import { crlPath, Provisioning } from '../provisioning/service.js';
import { withIntermediates } from '../provisioning/pki/served-chain.js';
import { pemDirectory, Trust } from '../provisioning/trust.js';
import { systemClock, type Clock } from '../registry/clock.js';
import { InProcessEventBus, type EventBus } from '../registry/events.js';
import { FleetGraph } from '../registry/graph.js';
import { openStore } from '../registry/open.js';
import { DEFAULT_REDIS_BUS_OPTIONS, RedisEventBus, type RedisBusOptions } from '../registry/redis-bus.js';
import { withRedisLock } from '../registry/redis-lock.js';
import { Registry } from '../registry/registry.js';
import { dataLayout, initDataDir, recordInitialState } from './data-dir.js';
import { brokerRegistry, claimPort, renewalPort } from './ports.js';
import { Reloader, trustDir } from './reload.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** How often renewals past their grace period are looked for (grace periods are a minute or more). */
const RENEWAL_SWEEP_MS = 30_000;

export interface ServiceOptions {
  dataDir: string;
  /** postgres://… for PostgreSQL; absent: the SQLite file in the data directory. */
  database?: string;
  /**
   * redis://… to run as a node of a cluster: MQTT state and registry events shared through
   * Redis. Absent: one process, everything in memory.
   */
  redis?: string;
  /** This node's name in logs, metrics and the cluster; hostname-pid when absent. */
  nodeName?: string;
  /** Heartbeat and confirmation timing of the cluster's event bus. */
  bus?: Partial<Pick<RedisBusOptions, 'heartbeatMs' | 'confirmTimeoutMs' | 'prefix'>>;
  /** Bounds of the MQTT state kept in Redis. */
  sharedState?: Partial<SharedStateLimits>;
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
  /** The first issuing CA's lifetime when the data directory is created here (default five years); rotation keeps it. */
  issuingCaLifetimeMs?: number;
  /** How often issuing-CA rotation checks its thresholds. */
  rotationIntervalMs?: number;
  /** How often renewals past their grace period are looked for (default 30 s). */
  renewalSweepIntervalMs?: number;
  /** How long a factory batch line is remembered, so that a retry gets the same certificate (default 30 days). */
  batchRetentionMs?: number;
  /** How often batch lines past their retention are forgotten (default hourly). */
  batchSweepIntervalMs?: number;
  /** The longest a break-glass grant may last. */
  breakGlassMaxMs?: number;
  broker?: Partial<BrokerOptions>;
  /** TLS session tickets on the MQTT listener (see broker/listener.ts for why they are off by default). */
  sessionTickets?: boolean;
}

export interface RunningService {
  nodeName: string;
  mqttPort: number;
  apiPort: number;
  apiUrl: string;
  dataDir: string;
  log: Logger;
  broker: DeviceBroker;
  graph: FleetGraph;
  reloader: Reloader;
  rotator: CaRotator;
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

/** The longest a break-glass grant may last unless configured otherwise: one night shift. */
export const DEFAULT_BREAK_GLASS_MAX_MS = 4 * 60 * 60 * 1000;
export const DEFAULT_BATCH_RETENTION_MS = 30 * DAY_MS;
const BATCH_SWEEP_MS = 60 * 60 * 1000;

/** The host to put in URLs: a wildcard address is no address to dial, so localhost. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

export async function startService(options: ServiceOptions): Promise<RunningService> {
  const clock = options.clock ?? systemClock;
  const nodeName = options.nodeName ?? defaultNodeName();
  // A node of a cluster (or a process given a name) says which in every log line and metric;
  // a single process's output stays as it always was.
  const named = options.redis !== undefined || options.nodeName !== undefined;
  // Asynchronous block writes (log-destination.ts); close() flushes what is left.
  const log = pino({ level: options.logLevel ?? 'info', base: named ? { service: 'fleet', node: nodeName } : { service: 'fleet' } }, options.logDestination ?? bufferedStdout());
  if (nativeEcdsaUnavailable) log.warn({ event: 'csr_verifier_slow', reason: nativeEcdsaUnavailable }, 'native CSR verifier not built (npm run build:native): CSR checks fall back to node:crypto at about twice the CPU');
  if (opensslErrorsUnavailable) log.warn({ event: 'peer_reader_slow', reason: opensslErrorsUnavailable }, 'native OpenSSL error-queue addon not built (npm run build:native): peer certificates are read with getPeerCertificate at about 40 µs more CPU per connect');
  const layout = dataLayout(options.dataDir);
  if (await initDataDir(layout.dir, clock, { issuingLifetimeMs: options.issuingCaLifetimeMs })) log.info({ event: 'data_dir_created', dir: layout.dir }, 'created data directory with a new dev PKI');

  // What has been started, to stop in reverse order: on close, or when a later step fails
  // (a port already taken), so a failed start leaves nothing running.
  const teardown: (() => unknown)[] = [];
  const stop = async () => {
    while (teardown.length > 0) await teardown.pop()!();
  };
  try {
    const store = await openStore(options.database ?? layout.registry);
    teardown.push(() => store.close());
    const cluster = options.redis ? await joinCluster(options.redis, nodeName, options, log) : undefined;
    const bus: EventBus = cluster?.bus ?? new InProcessEventBus();
    teardown.push(() => bus.close());
    const registry = new Registry({ store, bus, clock });
    await recordInitialState(registry, layout, clock);
    const keyring = await CaKeyring.load(layout.pki, await registry.authorities.list());
    const metrics = new MetricsRegistry();
    // Every series carries the node's name, so a cluster's scrapes stay apart.
    if (named) metrics.setDefaultLabels({ node: nodeName });
    collectDefaultMetrics({ register: metrics });
    let apiPort = options.apiPort;
    const publicUrl = () => options.publicUrl ?? `https://${urlHost(options.host)}:${apiPort}`;
    const rotator = new CaRotator({ rotation: registry.rotation, cas: registry.authorities, keyring, clock, log, metrics, crlUrl: (id) => `${publicUrl()}${crlPath(id)}` });
    await rotator.start();
    bus.subscribe((event) => rotator.apply(event));
    // Nodes and workers sharing a data directory replace an expiring server certificate one at
    // a time: two at once would leave one's key beside the other's certificate.
    const serverCertificateWork = <T>(work: () => Promise<T>) => (cluster ? cluster.exclusive(SERVER_CERTIFICATE_LOCK, work) : work());
    const server = await serverCertificateWork(() => loadServerCredentials(layout.pki, keyring.get(rotator.current())!, clock));

    const graph = await FleetGraph.build(store);
    bus.subscribe((event) => graph.apply(event));

    const certificateLifetimeMs = options.certificateLifetimeMs ?? 30 * DAY_MS;
    const provisioning = new Provisioning({ certificateLifetimeMs, backdateMs: 60_000, publicUrl }, { registry, keyring, issuing: rotator, clock, log });
    const claims = new ClaimProvisioning({ registry, provisioning, clock, log });

    const crlRevocations = new CrlRevocations();
    const brokerOptions: BrokerOptions = { ...DEFAULT_BROKER_OPTIONS, id: randomUUID(), ...options.broker };
    const broker = await DeviceBroker.create(brokerOptions, {
      registry: brokerRegistry(registry, brokerOptions.id!, crlRevocations, graph),
      events: bus,
      clock,
      log,
      metrics,
      claims: claimPort(registry, claims),
      renewal: renewalPort(registry, provisioning),
      sharedLimits: cluster?.limits,
      sharedState: cluster?.state,
      ...(cluster ? { otherNodes: { holdAuthenticated: async (clientId: string) => (await cluster.bus.ask('authenticated', clientId)).some((answer) => answer === true) } } : {}),
    });
    teardown.push(async () => {
      await broker.close();
      await cluster?.state.close();
      await cluster?.limits.close();
    });

    const extraTrust = () => pemDirectory(trustDir(layout), (file, problem) => log.error({ event: 'trust_file_ignored', file, problem }, 'a file in pki/trust.d/ is not a certificate'));
    const trust = await Trust.load(() => registry.authorities.list(), extraTrust, layout.pki.caBundle);
    // Both servers send their certificate with its intermediates.
    const servedCert = withIntermediates(server.certPem, trust.bundles.caBundlePem);
    const listener = await listenMutualTls(
      broker,
      { key: server.keyPem, cert: servedCert, ca: trust.bundles.clientTrustPem },
      { host: options.host, port: options.mqttPort },
      { handshakeTimeoutMs: brokerOptions.handshakeTimeoutMs, sessionTickets: options.sessionTickets ?? false },
    );
    teardown.push(() => listener.close());

    const crls = new Crls(keyring, (id) => registry.authorities.crlEntries(id), async (id) => (await registry.authorities.get(id)).parentId, clock, log);
    teardown.push(() => crls.stop());
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
      clock,
    });
    teardown.push(() => reloader.stop());
    if (cluster) {
      // Cut off from the bus, this node may miss revocations: it stops trusting what it has
      // cached. Back on the bus, it re-reads what it may have missed before trusting it again.
      cluster.bus.onLost(() => broker.eventsMayBeMissed());
      cluster.bus.onRestored(async () => {
        await graph.reload(store);
        await crls.refreshAll();
        await reloader.reloadTrust();
        const closed = await broker.resync();
        log.info({ event: 'resynced', sessionsChecked: broker.sessions.readyCount + closed.length, sessionsClosed: closed.length }, 'caught up with the registry after the bus came back');
      });
      // "Connected now" is a question for every node.
      cluster.bus.answer('connected', (deviceId) => broker.isConnected(String(deviceId)));
      // Monitor mode admits no one over a client id another node's authenticated device holds.
      cluster.bus.answer('authenticated', (clientId) => broker.holdsAuthenticated(String(clientId)));
    }
    const presence = {
      isConnected: async (deviceId: string) => broker.isConnected(deviceId) || (cluster !== undefined && (await cluster.bus.ask('connected', deviceId)).some((answer) => answer === true)),
    };
    const readiness = async (): Promise<Readiness> => {
      if (cluster && !cluster.bus.state.connected) return { ready: false, code: 'bus_disconnected' };
      if (cluster && !cluster.bus.state.caughtUp) return { ready: false, code: 'bus_catching_up' };
      try {
        await registry.authorities.list();
      } catch {
        return { ready: false, code: 'registry_unreachable' };
      }
      return { ready: true };
    };
    // The API asks callers for a client certificate (stations, devices renewing), trusted as
    // the broker trusts devices.
    const apiTlsMaterial = { key: server.keyPem, cert: servedCert, ca: trust.bundles.clientTrustPem };
    const api = await buildApi(
      { tls: apiTlsMaterial },
      {
        provisioning,
        claims,
        registry,
        graph,
        crls,
        caBundle: () => trust.bundles.caBundlePem,
        metrics,
        presence,
        readiness,
        node: nodeName,
        broker,
        reload: () => reloader.reloadAll(),
        rotation: rotator,
        breakGlassMaxMs: options.breakGlassMaxMs ?? DEFAULT_BREAK_GLASS_MAX_MS,
        renewalWindowMs: async (caId) => (await provisioning.policyOf(caId)).renewalWindowMs,
        defaultCertificateLifetimeMs: certificateLifetimeMs,
        clock,
        log,
      },
    );
    teardown.push(() => api.close());
    const apiTls = apiTlsContext(api, apiTlsMaterial);

    bus.subscribe(async (event) => {
      if (event.type !== 'ca.created' && event.type !== 'ca.status') return;
      await reloader.reloadTrust().catch((err: unknown) => log.error({ err, event: 'trust_reload_failed' }, 'trust bundle could not be rebuilt'));
    });
    // The broker and API certificate follows the issuing CA that signs now, so the superseded
    // one can retire from every bundle without taking the server's chain with it.
    bus.subscribe(async (event) => {
      if (event.type !== 'ca.rotation' || event.state !== 'active') return;
      await keyring.adopt(await registry.authorities.get(event.caId));
      const issuing = keyring.get(event.caId);
      if (!issuing) return;
      // Under the lock, the check comes again: another node may have reissued it meanwhile
      // (this node then reloads when it sees the files change).
      const reissue = async () => {
        if (await serverIssuedBy(layout.pki, issuing)) return false;
        await reissueServerCertificate(layout.pki, issuing, clock);
        return true;
      };
      await serverCertificateWork(reissue)
        .then(async (reissued) => {
          if (reissued) await reloader.reloadServer();
        })
        .catch((err: unknown) => log.error({ err, event: 'server_certificate_reissue_failed' }, 'server certificate could not be reissued under the new issuing CA'));
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
    teardown.push(() => clearInterval(expiringTimer));
    // Renewals whose successor was never seen: their predecessors retire when the grace ends.
    const retireOverdue = () => {
      const now = clock();
      return registry.lifecycle.retireOverdue({ kind: 'system', id: 'renewal' }, now).then(
        (settled) => log.debug({ event: 'renewal_sweep', at: now.toISOString(), settled }, 'overdue renewals settled'),
        (err: unknown) => log.error({ err, event: 'renewal_sweep_failed' }, 'overdue renewals not settled'),
      );
    };
    const renewalTimer = setInterval(() => void retireOverdue(), options.renewalSweepIntervalMs ?? RENEWAL_SWEEP_MS);
    renewalTimer.unref();
    teardown.push(() => clearInterval(renewalTimer));
    // Factory batch lines are idempotency records: kept for the retention period, then forgotten.
    const batchRetentionMs = options.batchRetentionMs ?? DEFAULT_BATCH_RETENTION_MS;
    const forgetBatchLines = () => {
      const now = clock();
      return registry.forgetBatchLines(new Date(now.getTime() - batchRetentionMs)).then(
        (forgotten) => log[forgotten > 0 ? 'info' : 'debug']({ event: 'batch_retention_sweep', at: now.toISOString(), forgotten }, 'batch lines past their retention forgotten'),
        (err: unknown) => log.error({ err, event: 'batch_retention_sweep_failed' }, 'batch lines past their retention not forgotten'),
      );
    };
    const batchTimer = setInterval(() => void forgetBatchLines(), options.batchSweepIntervalMs ?? BATCH_SWEEP_MS);
    batchTimer.unref();
    teardown.push(() => clearInterval(batchTimer));

    await api.listen({ host: options.host, port: options.apiPort });
    apiPort = (api.server.address() as { port: number }).port;
    rotator.run(options.rotationIntervalMs ?? 60_000);
    teardown.push(() => rotator.stop());

    // Tools wait for this line (the benchmark, test harnesses, an operator's supervisor): it is
    // written at every level but silent, not only at info and below.
    (log.level === 'silent' ? log : log.child({}, { level: 'info' })).info(
      { event: 'listening', pid: process.pid, mqtt: `mqtts://${urlHost(options.host)}:${listener.port}`, api: publicUrl(), dataDir: layout.dir, registry: store.dialect, bus: cluster ? 'redis' : 'in-process', graph: graph.size, csrVerifier: ecdsa.kind },
      'fleet service ready',
    );

    let closing: Promise<void> | undefined;
    return {
      nodeName,
      mqttPort: listener.port,
      apiPort,
      apiUrl: `https://${urlHost(options.host)}:${apiPort}`,
      dataDir: layout.dir,
      log,
      broker,
      graph,
      reloader,
      rotator,
      close: () =>
        (closing ??= (async () => {
          await stop();
          await new Promise<void>((resolve) => log.flush(() => resolve()));
        })()),
    };
  } catch (error) {
    await stop().catch((cause: unknown) => log.error({ err: cause }, 'failed start not fully stopped'));
    await new Promise<void>((resolve) => log.flush(() => resolve()));
    throw error;
  }
}

export type Readiness = { ready: true } | { ready: false; code: 'bus_disconnected' | 'bus_catching_up' | 'registry_unreachable' };

/** Unique per process on one host, recognisable across restarts. */
export function defaultNodeName(): string {
  return `${hostname()}-${process.pid}`;
}

interface ClusterMembership {
  bus: RedisEventBus;
  state: SharedMqttState;
  limits: SharedLimits;
  /** Runs work that one node of the cluster at a time may do. */
  exclusive<T>(lock: string, work: () => Promise<T>): Promise<T>;
}

const SERVER_CERTIFICATE_LOCK = 'server-certificate';

/** Connects to the cluster's Redis: the event bus (heard back before this returns) and the MQTT state. */
async function joinCluster(url: string, nodeName: string, options: ServiceOptions, log: Logger): Promise<ClusterMembership> {
  const bus = new RedisEventBus({ ...DEFAULT_REDIS_BUS_OPTIONS, ...options.bus, url, node: nodeName }, log);
  try {
    await bus.start();
  } catch (error) {
    await bus.close();
    throw error;
  }
  // Each part's connections are ready before it is handed on; a part that fails closes those before it.
  const opened: { close(): Promise<void> }[] = [bus];
  try {
    const prefix = options.bus?.prefix ?? DEFAULT_REDIS_BUS_OPTIONS.prefix;
    const state = await redisMqttState(url, { ...DEFAULT_SHARED_STATE_LIMITS, ...options.sharedState }, log);
    opened.push(state);
    const limits = await redisSharedLimits(url, prefix, log);
    return { bus, state, limits, exclusive: (lock, work) => withRedisLock(url, `${prefix}:lock:${lock}`, work) };
  } catch (error) {
    await Promise.all(opened.map((part) => part.close()));
    throw error;
  }
}
