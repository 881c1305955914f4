// Aedes with our admission, confinement and enforcement wired into its hooks. Transport
// neutral: handle() takes any duplex stream plus the facts its TLS layer established, so the
// same broker runs behind node:tls in production and over in-memory streams in tests.
import { Aedes, type AedesOptions, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Registry as MetricsRegistry } from 'prom-client';
import { validityProblem } from '../registry/certificate-checks.js';
import type { Clock } from '../registry/clock.js';
import type { EventHandler, RegistryEvent } from '../registry/events.js';
import type { Fingerprint } from '../registry/ids.js';
import type { CaRecord, EnforcementMode, Grant, Sighting } from '../registry/model.js';
import { AbuseControl, type AbuseLimits } from './abuse.js';
import { AccessCache, AccessPolicy, type AccessSource } from './access.js';
import type { SharedLimits } from './cluster-limits.js';
import { coalesceWrites } from './coalesce-writes.js';
import { decideAdmission, registryVerdict, type AdmissionOptions, type Standing, type Verdict } from './admission.js';
import { GrantBook } from './break-glass.js';
import { isRenewTopic, RenewTopic, type RenewalPort } from './fleet-topics/renew.js';
import { EnforcementState } from './enforcement.js';
import { ClaimTopics, isClaimTopic, type ClaimPort } from './fleet-topics/claim.js';
import { DirectReplies } from './fleet-topics/replies.js';
import { JustInTime, type JitRegistry } from './jit.js';
import { PacketLengthWatch, PublishPacer, type PublishLimits } from './limits.js';
import { parseCertificates, subjectLine, type PeerCertificateFacts, type PeerFacts } from './peer.js';
import { ALWAYS_ENFORCED, Refusal, type Reason, type RefusalFacts } from './reasons.js';
import { closeSession, newSession, SessionIndex, unsubscribeSession, type Session, type SessionClient } from './sessions.js';
import { BrokerTelemetry } from './telemetry.js';
import { isOwnTopic } from './topics.js';
import { VerdictCache, type AdmissionSource, type VerdictCacheOptions } from './verdicts.js';

export interface BrokerOptions {
  /** Aedes broker id; unique per process in a cluster. */
  id?: string;
  /** Largest MQTT packet (remaining length) a device may send. */
  maxPacketBytes: number;
  publish: PublishLimits;
  abuse: AbuseLimits;
  /** Keep-alive a CONNECT may ask for, in seconds (MQTT 3.1.1 §3.1.2.10). */
  keepalive: { minSeconds: number; maxSeconds: number };
  maxSubscriptions: number;
  cache: VerdictCacheOptions;
  /** Time allowed for the TLS handshake, and then between the handshake and CONNECT. */
  handshakeTimeoutMs: number;
  connectTimeoutMs: number;
}

/** Everything the broker needs from the registry, and nothing more. */
export interface BrokerRegistry extends AdmissionSource, AccessSource, JitRegistry {
  recordSighting(sighting: Omit<Sighting, 'id' | 'at'>): Promise<void>;
  /** Every CA the registry knows, to tell a missing chain link from a stranger. */
  cas(): Promise<CaRecord[]>;
  enforcement(): Promise<{ listener: EnforcementMode; monitoredGroups: string[] }>;
  activeGrants(): Promise<Grant[]>;
  grant(id: string): Promise<Grant>;
  recordGrantUse(grant: Grant, details: { fingerprint: string; peer: string }): Promise<void>;
  /** A renewed certificate was seen on a connection: the certificate it renewed may retire. */
  renewalSeen?(serial: string): Promise<void>;
}

/** Holds device publishes while a cluster's routing is behind (broker/routing-gate.ts). */
export interface PublishGate {
  readonly open: boolean;
  admit(proceed: () => void): void;
  readonly delayMs: number;
  readonly held: number;
}

export interface BrokerDeps {
  registry: BrokerRegistry;
  events: { subscribe(handler: EventHandler): () => void };
  clock: Clock;
  log: Logger;
  metrics: MetricsRegistry;
  /** Monotonic milliseconds for pacing and throttling; defaults to performance.now. */
  monotonicMs?: () => number;
  /** Fleet provisioning by claim; without it claim certificates are refused. */
  claims?: ClaimPort;
  /** Serves $fleet/certificates/renew/json; without it the topic is like any other a device may not use. */
  renewal?: RenewalPort;
  /** Claim rate limits and bans shared with other nodes (broker/cluster-limits.ts); per node when absent. */
  sharedLimits?: SharedLimits;
  /** MQTT state shared with other nodes (broker/cluster.ts); in this process's memory when absent. */
  sharedState?: { mq: unknown; persistence: unknown; routing?: PublishGate };
  /** The other nodes of a cluster, asked whether one holds an authenticated session of a client id. */
  otherNodes?: { holdAuthenticated(clientId: string): Promise<boolean> };
}

/** Per-connection state, kept only while the connection lives. */
interface Connection {
  peer: PeerFacts;
  /** Follows the packet headers the device sends, to refuse an oversized packet before it is buffered. */
  lengths: PacketLengthWatch;
  willTopic?: string;
  keepalive?: number;
  session?: Session;
  pacer?: PublishPacer;
  /** Why the connection ended, when the broker knows better than "closed". */
  endReason?: string;
  /** The serial of a renewed certificate whose predecessor retires once this connection is ready. */
  retiresPredecessorOf?: string;
}

// Aedes' own errors carry no codes; these messages are the ones that end a connection
// without the device having broken a rule.
const ORDINARY_ENDINGS = new Set(['keep alive timeout', 'drain timeout', 'connection closed']);
/**
 * Patched Aedes (broker/patches) ends a subscriber's connection with this when the MQTT state
 * could not give the retained messages of its SUBSCRIBE (Redis away, in a cluster): the
 * broker's failure, not the device's.
 */
const RETAINED_UNREADABLE = 'retained messages could not be read';

/** The part of an MQEmitter the broker listens on for other nodes' new clients. */
interface SystemTopics {
  on(topic: string, listener: (packet: { topic: string; payload: Buffer | string }, done: () => void) => void): void;
}

/**
 * While events may be missed, how often live sessions are checked against the registry: a
 * device revoked on another node during the outage is closed here within this, bus or no bus.
 */
export const UNSURE_RECHECK_MS = 2000;
/** The same sighting is recorded at most this often. */
const SIGHTING_INTERVAL_MS = 60_000;
export const PRESENCE_TOPIC = '$fleet/events/presence';
const RENEW_ONLY = 'a session of an expired certificate may only renew';

const addressOf = (peer: string) => peer.slice(0, peer.lastIndexOf(':'));

export class DeviceBroker {
  readonly sessions = new SessionIndex();
  readonly enforcement = new EnforcementState();
  readonly abuse: AbuseControl;
  readonly #grants = new GrantBook();
  readonly #connections = new WeakMap<object, Connection>();
  readonly #cache: VerdictCache;
  readonly #access: AccessCache;
  readonly #jit: JustInTime;
  readonly #claims: ClaimTopics;
  readonly #telemetry: BrokerTelemetry;
  readonly #unsubscribe: () => void;
  readonly #now: () => number;
  readonly #lastSightings = new Map<string, number>();
  /** Registry events may have been missed (cut off from the cluster's bus): admit nobody, re-check live sessions. */
  #unsure = false;
  /** Re-checks live sessions against the registry while unsure. */
  #unsureRecheck?: NodeJS.Timeout;
  #rechecking = false;
  readonly #renew?: RenewTopic;
  /** Replies on the fleet's own topics, each to the session that asked (fleet-topics/replies.ts). */
  readonly #replies: DirectReplies;
  #aedes!: Aedes;

  private constructor(
    private readonly options: BrokerOptions,
    private readonly deps: BrokerDeps,
  ) {
    this.#now = deps.monotonicMs ?? (() => performance.now());
    this.#cache = new VerdictCache(deps.registry, options.cache);
    this.#access = new AccessCache(deps.registry, options.cache.maxEntries);
    this.#jit = new JustInTime(deps.registry);
    const replies = (this.#replies = new DirectReplies((topic) => isClaimTopic(topic) || isRenewTopic(topic)));
    this.#claims = new ClaimTopics({ port: deps.claims, log: deps.log, clock: deps.clock, monotonicMs: this.#now, metrics: deps.metrics, replies, takeToken: deps.sharedLimits && ((batchId, rate) => deps.sharedLimits!.takeClaimToken(batchId, rate)) });
    this.abuse = new AbuseControl(options.abuse, this.#now);
    if (deps.sharedLimits) {
      this.abuse.share(deps.sharedLimits);
      deps.sharedLimits.onBans({ banned: (ban) => this.abuse.adopt(ban), unbanned: (clientId) => this.abuse.lift(clientId) });
    }
    this.#telemetry = new BrokerTelemetry(deps.log, deps.metrics);
    if (deps.sharedState?.routing) this.#telemetry.watchRouting(deps.sharedState.routing);
    if (deps.renewal) this.#renew = new RenewTopic(deps.renewal, replies, deps.log);
    this.#unsubscribe = deps.events.subscribe((event) => this.#onRegistryEvent(event));
  }

  static async create(options: BrokerOptions, deps: BrokerDeps): Promise<DeviceBroker> {
    const broker = new DeviceBroker(options, deps);
    await broker.#start();
    return broker;
  }

  get telemetry(): BrokerTelemetry {
    return this.#telemetry;
  }

  /** Takes a connection whose transport has finished its handshake. */
  handle(stream: Duplex, peer: PeerFacts): void {
    const connection: Connection = { peer, lengths: new PacketLengthWatch(this.options.maxPacketBytes) };
    this.#connections.set(stream, connection);
    stream.read = this.#watchedRead;
    coalesceWrites(stream);
    stream.on('close', this.#streamClosed);
    this.#aedes.handle(stream);
  }

  // The stream hooks every connection shares, made once per broker (they find their
  // connection by the stream they are called on): ten thousand idle devices hold no closure
  // of their own for them.
  readonly #streamClosed = ((broker: DeviceBroker) =>
    function (this: Duplex): void {
      const connection = broker.#connections.get(this);
      if (connection) broker.#onClose(connection);
    })(this);

  /**
   * Replaces each stream's read: looks at every chunk Aedes takes for an oversized or
   * malformed packet header, and ends the connection before the parser starts buffering such
   * a packet.
   */
  readonly #watchedRead = ((broker: DeviceBroker) =>
    function (this: Duplex, size?: number): unknown {
      const chunk: unknown = (Object.getPrototypeOf(this) as Duplex).read.call(this, size);
      const connection = broker.#connections.get(this);
      if (!connection || !Buffer.isBuffer(chunk)) return chunk;
      const problem = connection.lengths.scan(chunk);
      if (!problem) return chunk;
      if (problem.kind === 'too_large') {
        broker.#refuse('packet_too_large', connection, undefined, { detail: `${problem.announced} bytes announced, ${broker.options.maxPacketBytes} allowed` });
      } else {
        broker.#refuse('protocol_violation', connection, undefined, { detail: 'malformed remaining length' });
      }
      this.destroy();
      return null;
    })(this);

  isConnected(deviceId: string): boolean {
    return this.sessions.isConnected(deviceId);
  }

  /**
   * The CAs client certificates must chain to changed: sessions whose issuer is no longer
   * among them are closed as from an unknown issuer; the others are untouched.
   */
  trustChanged(trustedPem: string): Session[] {
    const trusted = new Set(parseCertificates(trustedPem).map(subjectLine));
    const orphans = [...this.sessions.all()].filter((s) => s.phase !== 'closed' && s.issuer !== '' && !trusted.has(s.issuer));
    const closed = this.sessions.condemn(orphans, 'unknown_issuer');
    for (const session of closed) this.#terminated(session, 'unknown_issuer');
    return closed;
  }

  async close(): Promise<void> {
    clearInterval(this.#unsureRecheck);
    this.#unsubscribe();
    await new Promise<void>((resolve) => this.#aedes.close(() => resolve()));
  }

  /**
   * The registry's events may be missed from now on (a cluster node cut off from its bus):
   * until resync(), every CONNECT is refused with registry_unavailable (a node that may have
   * missed a status change, a trust change or a takeover elsewhere admits nobody), and every
   * UNSURE_RECHECK_MS the live sessions are checked against the registry itself, so one
   * revoked elsewhere meanwhile is closed all the same.
   */
  eventsMayBeMissed(): void {
    this.#unsure = true;
    this.#cache.readThrough(true);
    this.#unsureRecheck ??= setInterval(() => void this.#recheckWhileUnsure(), UNSURE_RECHECK_MS);
    this.#unsureRecheck.unref();
  }

  async #recheckWhileUnsure(): Promise<void> {
    if (this.#rechecking) return; // a slow registry: the next tick tries again
    this.#rechecking = true;
    try {
      // Standing only (revoked, disabled): a read per session each round; topic access is
      // re-read once, at the catch-up.
      const closed = await this.#recheckLive({ access: false });
      if (closed.length > 0) this.deps.log.info({ event: 'sessions_rechecked', sessionsClosed: closed.length }, 'closed sessions the registry no longer admits while cut off from the bus');
    } catch (err) {
      this.deps.log.warn({ err, event: 'session_recheck_failed' }, 'live sessions could not be checked against the registry; trying again');
    } finally {
      this.#rechecking = false;
    }
  }

  /**
   * Catches up with whatever events were missed: forgets every cached verdict and policy,
   * re-reads enforcement and grants, and checks every live session against the registry,
   * closing those it no longer admits. Cached verdicts are trusted again only once that
   * succeeded; if the registry cannot answer, this rejects and the broker stays unsure.
   * Returns the sessions closed.
   */
  async resync(): Promise<Session[]> {
    this.#cache.clear();
    this.#access.invalidate();
    this.#jit.forget();
    await Promise.all([this.#loadEnforcement(), this.#loadGrants()]);
    const closed = await this.#recheckLive({ access: true });
    this.#unsure = false;
    this.#cache.readThrough(false);
    clearInterval(this.#unsureRecheck);
    this.#unsureRecheck = undefined;
    return closed;
  }

  /** Checks every live session against the registry (through the cache), closing those it no longer admits. */
  async #recheckLive(options: { access: boolean }): Promise<Session[]> {
    const live = [...this.sessions.all()].filter((s) => s.phase !== 'closed' && !s.doomed);
    const verdicts = await Promise.all(live.map(async (s) => (s.fingerprint === '' ? undefined : registryVerdict(await this.#cache.standing(s.fingerprint as Fingerprint), { commonName: s.deviceId } as PeerCertificateFacts, s.grant?.waives))));
    const closed: Session[] = [];
    live.forEach((session, i) => {
      const verdict = verdicts[i];
      if (!verdict || verdict.ok) return;
      if (session.monitored && !ALWAYS_ENFORCED.includes(verdict.reason)) return;
      for (const s of this.sessions.condemn([session], verdict.reason)) {
        this.#terminated(s, verdict.reason);
        closed.push(s);
      }
    });
    if (options.access) await this.#refreshAccess([...new Set(live.filter((s) => !s.doomed).map((s) => s.deviceId))], false);
    return closed;
  }

  async #start(): Promise<void> {
    const options: AedesOptions = {
      id: this.options.id,
      // A shared emitter is built with the same concurrency 0 (broker/cluster.ts).
      ...(this.deps.sharedState ? { mq: this.deps.sharedState.mq, persistence: this.deps.sharedState.persistence } : {}),
      // concurrency 0 lets mqemitter deliver without its bounded queue. With the queue, a
      // subscriber dropping during a QoS0 flood leaves thousands of queued messages with no
      // listener, which mqemitter then drains by synchronous recursion until the stack
      // overflows and the process dies. Back-pressure still holds: Aedes reads a client's
      // next packets only when delivery of the current ones has completed.
      concurrency: 0,
      connectTimeout: this.options.connectTimeoutMs,
      preConnect: (client, packet, done) => {
        // Only remember what authenticate needs from the packet; the decision belongs there,
        // so the device gets a CONNACK code rather than a dropped socket.
        const connection = this.#connections.get(client.conn);
        if (connection) {
          connection.willTopic = packet.will?.topic;
          connection.keepalive = packet.keepalive;
        }
        done(null, true);
      },
      authenticate: (client, _username, _password, done) => {
        this.#authenticate(client).then(
          (refusal) => done(refusal ?? null, refusal === undefined),
          (error: unknown) => {
            this.deps.log.error({ err: error }, 'admission failed unexpectedly');
            done(new Refusal('registry_unavailable'), false);
          },
        );
      },
      authorizePublish: (client, packet, done) => this.#authorizePublish(client, packet, done),
      authorizeSubscribe: (client, subscription, done) => this.#authorizeSubscribe(client, subscription, done),
      // Only '$' topics need a look: requests of the fleet's own topics reach no subscriber,
      // and their replies only the session that asked (fleet-topics/).
      authorizeForward: (client, packet) => (packet.topic.charCodeAt(0) === 0x24 ? this.#replies.forward(client, packet) : packet),
    };
    this.#aedes = await Aedes.createBroker(options);
    this.#aedes.on('clientReady', (client) => this.#onReady(client));
    // Aedes on another node announces each client it takes on $SYS/<broker>/new/clients and
    // closes the same client id here: the node that loses the session counts the takeover
    // (the newcomer's node sees no earlier session), so the cluster counts it once.
    if (this.deps.sharedState) (this.deps.sharedState.mq as SystemTopics).on('$SYS/+/new/clients', (packet, done) => this.#takenOverElsewhere(packet, done));
    this.#aedes.on('clientError', (client, error) => this.#onClientError(client, error));
    this.#aedes.on('connectionError', (client, error) => this.#onClientError(client, error));
    // Aedes reports failures of its persistence here (Redis away, in a cluster); unheard,
    // an EventEmitter error would end the process.
    (this.#aedes as unknown as EventEmitter).on('error', (err: Error) => this.deps.log.error({ err, event: 'broker_error' }, 'broker state operation failed'));
    this.#aedes.on('unsubscribe', (filters, client) => {
      const held = this.#connections.get(client.conn)?.session?.filters;
      if (held) for (const filter of filters) held.delete(filter);
    });
    await Promise.all([this.#loadEnforcement(), this.#loadGrants()]);
  }

  async #loadEnforcement(): Promise<void> {
    const { listener, monitoredGroups } = await this.deps.registry.enforcement();
    this.enforcement.set(listener, monitoredGroups);
  }

  async #loadGrants(): Promise<void> {
    this.#grants.replaceAll(await this.deps.registry.activeGrants());
  }

  /**
   * Whether the registry knows a CA of this name now. Asked only when a chain failed to
   * verify, so it reads the registry rather than a cache: a broker whose trust is behind the
   * registry (a reload pending or failed) then says chain_incomplete, not unknown_issuer.
   */
  async #registryKnowsIssuer(issuer: string): Promise<boolean> {
    try {
      const cas = await this.deps.registry.cas();
      // A retired issuing CA is trusted no more, on purpose: its stragglers are strangers now.
      return cas.some((ca) => ca.status !== 'RETIRED' && parseCertificates(ca.pem).some((c) => subjectLine(c) === issuer));
    } catch {
      return false;
    }
  }

  async #authenticate(client: Client): Promise<Refusal | undefined> {
    const started = this.#now();
    const connection = this.#connections.get(client.conn);
    if (!connection) return new Refusal('certificate_invalid', { detail: 'connection without TLS facts' });
    const { peer } = connection;
    const certificate = peer.certificate;

    // Track the session before asking the registry: a revocation landing during the lookup
    // then finds it and condemns it (a connection racing a revocation must not survive).
    const session = newSession({
      fingerprint: certificate?.fingerprint ?? '',
      deviceId: certificate?.commonName ?? client.id,
      serial: certificate?.serial ?? '',
      peer: peer.address,
      issuer: certificate?.issuer ?? '',
      client: client as unknown as SessionClient,
    });
    this.sessions.track(session);
    connection.session = session;

    let verdict = await this.#decide(client, connection, session);
    peer.der = undefined; // only registration needed it
    if (verdict.ok && session.doomed) verdict = { ok: false, reason: session.doomed.reason, detail: 'status changed during admission' };
    if (verdict.ok && verdict.deviceId !== session.deviceId) this.sessions.rename(session, verdict.deviceId);
    if (verdict.ok && verdict.record?.renewalPending) connection.retiresPredecessorOf = verdict.record.serial;
    if (verdict.ok && session.renewOnly && connection.willTopic !== undefined) {
      verdict = { ok: false, reason: 'topic_denied', detail: `will topic ${connection.willTopic}: ${RENEW_ONLY}` };
    } else if (verdict.ok && !session.claim) {
      session.policy = await this.#policyOf(session.deviceId);
      // A will is a publish the broker will make on the device's behalf: the same policy applies.
      if (connection.willTopic !== undefined && !session.policy.mayPublish(connection.willTopic)) {
        if (this.#monitored(session, 'topic_denied')) this.#wouldRefuse('topic_denied', connection, client.id, { topic: connection.willTopic });
        else verdict = { ok: false, reason: 'topic_denied', detail: `will topic ${connection.willTopic}` };
      }
    }

    const seconds = (this.#now() - started) / 1000;
    if (!verdict.ok) {
      const facts = this.#facts(connection, client.id, verdict.detail);
      this.sessions.untrack(session);
      this.#telemetry.decided(seconds);
      this.#telemetry.refused(verdict.reason, facts);
      if (verdict.reason === 'client_id_mismatch' && certificate) this.#sight('client_id_conflict', { fingerprint: certificate.fingerprint, deviceId: certificate.commonName, clientId: client.id, details: { peer: peer.address } });
      return new Refusal(verdict.reason, facts);
    }
    session.phase = 'authenticated';
    this.#noteTakeover(session);
    // One line per admission, with what identifies it: the serial leads to the rest.
    this.#telemetry.admitted({ clientId: client.id, deviceId: session.deviceId, serial: certificate?.serial, peer: peer.address, grant: session.grant?.id, monitored: session.monitored || undefined, renewOnly: session.renewOnly }, seconds);
    return undefined;
  }

  /**
   * The decision for a CONNECT: abuse control and keep-alive first (always enforced), then
   * the identity checks; a failed identity check may still pass through a break-glass grant
   * or, in monitor mode, be only recorded.
   */
  async #decide(client: Client, connection: Connection, session: Session): Promise<Verdict> {
    const { peer } = connection;
    const allowance = this.abuse.checkConnect(client.id, addressOf(peer.address), peer.certificate?.fingerprint);
    if (!allowance.ok) return { ok: false, reason: allowance.reason, detail: allowance.detail };
    const { minSeconds, maxSeconds } = this.options.keepalive;
    const keepalive = connection.keepalive ?? 0;
    if (keepalive < minSeconds || keepalive > maxSeconds) return { ok: false, reason: 'keepalive_out_of_bounds', detail: `${keepalive} s; allowed ${minSeconds}–${maxSeconds} s` };
    // Fail closed while events may be missed: the registry alone cannot say whether a session
    // elsewhere holds this id, or what the trust or enforcement changes were.
    if (this.#unsure) return { ok: false, reason: 'registry_unavailable', detail: 'cut off from the cluster’s event bus: admitting nobody until caught up' };

    const issuerKnown = peer.chainError && peer.certificate ? await this.#registryKnowsIssuer(peer.certificate.issuer) : false;
    // A claim certificate admits a claim session, on its own checks; never monitored or waived.
    if (peer.certificate?.claimBatch !== undefined) {
      const claim = await this.#claims.admit(peer, client.id, { clean: client.clean, will: connection.willTopic !== undefined }, () => issuerKnown);
      if (!claim.ok) return claim;
      session.claim = claim.session;
      return { ok: true, deviceId: client.id };
    }
    const decide = (options?: AdmissionOptions) =>
      decideAdmission({ peer, clientId: client.id }, { now: this.deps.clock, standing: (c) => this.#standing(c, peer.der), knownIssuer: () => issuerKnown }, options);
    const verdict = await decide();
    if (verdict.ok || !peer.certificate) return this.#maybeMonitor(verdict, client, connection, session);

    // A grant may have been closed in an event this node missed: none applies while unsure.
    const grant = this.#unsure ? undefined : this.#grants.find(peer.certificate, verdict.reason, this.deps.clock());
    if (grant) {
      const waived = await decide({ waive: verdict.reason });
      if (waived.ok) {
        this.#useGrant(grant, session, verdict.reason, connection, client.id);
        return waived;
      }
      return this.#maybeMonitor(waived, client, connection, session);
    }
    // Monitor mode, where it applies, admits in full; only what it would refuse may still renew.
    const monitored = await this.#maybeMonitor(verdict, client, connection, session);
    if (monitored.ok) return monitored;
    const renewing = await this.#renewalOnly(verdict, peer.certificate, decide);
    if (!renewing) return monitored;
    session.renewOnly = true;
    return renewing;
  }

  /**
   * A certificate that has expired, but within its CA's renewal window, is admitted to a
   * session that may only renew (a device back from months offline renews with it, as over
   * HTTPS); every other check still applies. Outside the window, or when the window cannot
   * be read, the refusal stands.
   */
  async #renewalOnly(verdict: Extract<Verdict, { ok: false }>, certificate: PeerCertificateFacts, decide: (options?: AdmissionOptions) => Promise<Verdict>): Promise<Verdict | undefined> {
    if (verdict.reason !== 'certificate_expired' || !this.#renew || !this.deps.renewal) return undefined;
    const now = this.deps.clock();
    // The device's own certificate must be the expired one, not a CA of its chain.
    if (validityProblem(certificate, now)?.reason !== 'certificate_expired') return undefined;
    const waived = await decide({ waive: 'certificate_expired' });
    if (!waived.ok || !waived.record) return undefined;
    const windowMs = await this.deps.renewal.renewalWindowMs(waived.record.caId ?? '').catch((err: unknown) => {
      this.deps.log.warn({ err, event: 'renewal_window_unavailable', deviceId: waived.deviceId }, 'renewal window could not be read; refused as expired');
      return 0;
    });
    return now.getTime() <= certificate.notAfter.getTime() + windowMs ? waived : undefined;
  }

  /** In monitor mode a failed identity check is recorded and the device admitted as it claims to be. */
  async #maybeMonitor(verdict: Verdict, client: Client, connection: Connection, session: Session): Promise<Verdict> {
    // Enforcement may have been switched on in an event this node missed: enforce while unsure.
    if (verdict.ok || this.#unsure) return verdict;
    const claimed = connection.peer.certificate?.commonName ?? client.id;
    const groups = this.enforcement.listener === 'monitor' ? [] : (await this.#policyOf(claimed)).groups;
    if (!this.enforcement.monitors(verdict.reason, groups)) return verdict;
    // Aedes hands a client id's session to whoever connects with it last: monitor mode must
    // not let an unauthenticated client displace a device that proved who it is.
    if (await this.#heldByAuthenticated(client.id, session)) {
      if (connection.peer.certificate) this.#sight('client_id_conflict', { fingerprint: connection.peer.certificate.fingerprint, deviceId: claimed, clientId: client.id, details: { peer: connection.peer.address } });
      return { ...verdict, detail: `${verdict.detail ? `${verdict.detail}; ` : ''}not monitored: client id ${client.id} has an authenticated session` };
    }
    session.monitored = true;
    this.#wouldRefuse(verdict.reason, connection, client.id, { detail: verdict.detail, deviceId: claimed });
    return { ok: true, deviceId: claimed };
  }

  /** Whether a session admitted on its own checks (not by monitor mode) holds this client id, here or on another node. */
  async #heldByAuthenticated(clientId: string, newcomer: Session): Promise<boolean> {
    // An admitted session's device id is its client id (claim sessions' included).
    if (this.sessions.ofDevice(clientId).some((s) => s !== newcomer && !s.monitored && !s.doomed && (s.phase === 'authenticated' || s.phase === 'ready'))) return true;
    if (!this.deps.otherNodes) return false;
    // Not knowing is treated as held: the newcomer is refused, the device keeps its session.
    return this.deps.otherNodes.holdAuthenticated(clientId).catch(() => true);
  }

  /** Whether this node holds a session of `clientId` admitted on its own checks (asked by other nodes). */
  holdsAuthenticated(clientId: string): boolean {
    return this.sessions.ofDevice(clientId).some((s) => !s.monitored && !s.doomed && s.phase === 'ready');
  }

  #useGrant(grant: Grant, session: Session, waived: Reason, connection: Connection, clientId: string): void {
    const facts = { ...this.#facts(connection, clientId), grant: grant.id };
    session.grant = { id: grant.id, waives: waived };
    const remaining = (grant.expiresAt?.getTime() ?? 0) - this.deps.clock().getTime();
    // The grant ends by itself; so does what it let in.
    session.grant.timer = setTimeout(() => {
      for (const closed of this.sessions.condemn([session], waived)) this.#terminated(closed, waived);
    }, Math.max(0, remaining));
    session.grant.timer.unref();
    this.#telemetry.breakGlassUsed(waived, facts);
    this.deps.registry.recordGrantUse(grant, { fingerprint: session.fingerprint, peer: session.peer }).catch((err: unknown) => this.deps.log.error({ err }, 'break-glass use not audited'));
  }

  /** The registry's standing of a certificate, registering it first if an operator's CA says so. */
  async #standing(certificate: PeerCertificateFacts, der: Buffer | undefined): Promise<Standing> {
    const standing = await this.#cache.standing(certificate.fingerprint);
    if (standing.kind !== 'unregistered' || !der) return standing;
    const outcome = await this.#jit.consider(der, certificate);
    if (!outcome) return standing;
    if (outcome === 'revoked') return { kind: 'revoked' };
    this.#telemetry.justInTime(outcome.outcome === 'registered' ? outcome.status : `refused_${outcome.why}`);
    if (outcome.outcome !== 'registered') return standing;
    this.#cache.forget(certificate.fingerprint);
    return this.#cache.standing(certificate.fingerprint);
  }

  async #policyOf(deviceId: string): Promise<AccessPolicy> {
    try {
      return await this.#access.policyOf(deviceId, this.#unsure);
    } catch (err) {
      // Fail closed on grants: the device keeps its own namespace and nothing more.
      this.deps.log.warn({ err, event: 'access_unavailable', deviceId }, 'topic policy could not be read; own namespace only');
      return AccessPolicy.own(deviceId);
    }
  }

  #monitored(session: Session, reason: Reason): boolean {
    return session.monitored === true || this.enforcement.monitors(reason, session.policy.groups);
  }

  #takenOverElsewhere(packet: { topic: string; payload: Buffer | string }, done: () => void): void {
    const broker = packet.topic.split('/')[1];
    if (broker !== this.options.id) {
      const deviceId = packet.payload.toString();
      const previous = this.sessions.ofDevice(deviceId).filter((s) => s.phase === 'ready' && !s.claim);
      if (previous.length > 0) this.#telemetry.takeover({ deviceId, byBroker: broker, previousPeers: previous.map((s) => s.peer) });
    }
    done();
  }

  /** A second connection of a device replaces the first; count it, and watch for copied keys. */
  #noteTakeover(session: Session): void {
    const previous = this.sessions.ofDevice(session.deviceId).filter((s) => s !== session && s.phase === 'ready');
    if (previous.length === 0) return;
    this.#telemetry.takeover({ deviceId: session.deviceId, peer: session.peer, previousPeers: previous.map((s) => s.peer) });
    // The same certificate live elsewhere, from another address, is likely a copied key.
    const sharing = previous.filter((s) => s.fingerprint === session.fingerprint && s.fingerprint !== '' && addressOf(s.peer) !== addressOf(session.peer));
    if (sharing.length > 0) this.#sight('shared_certificate', { fingerprint: session.fingerprint, deviceId: session.deviceId, details: { peers: [session.peer, ...sharing.map((s) => s.peer)] } });
  }

  #sight(kind: Sighting['kind'], sighting: Omit<Sighting, 'id' | 'at' | 'kind'>): void {
    const key = `${kind}:${sighting.fingerprint ?? ''}:${sighting.clientId ?? ''}`;
    const now = this.#now();
    if (now - (this.#lastSightings.get(key) ?? -Infinity) < SIGHTING_INTERVAL_MS) return;
    this.#lastSightings.set(key, now);
    if (this.#lastSightings.size > 10_000) this.#lastSightings.delete(this.#lastSightings.keys().next().value!);
    this.deps.log.warn({ event: 'sighting', kind, ...sighting }, 'recorded for the fleet report');
    this.deps.registry.recordSighting({ kind, ...sighting }).catch((err: unknown) => this.deps.log.error({ err }, 'sighting not recorded'));
  }

  #onReady(client: Client): void {
    const session = this.#connections.get(client.conn)?.session;
    if (!session) return;
    if (session.doomed) {
      // Condemned after authenticate but before the CONNACK went out: close it now, before
      // Aedes processes anything the device queued behind its CONNECT.
      this.#terminate(session, session.doomed.reason, session.doomed.recordedAt);
      return;
    }
    this.sessions.markReady(session);
    this.#telemetry.connectedDevices(this.sessions.readyCount);
    const renewed = this.#connections.get(client.conn)?.retiresPredecessorOf;
    if (renewed) this.deps.registry.renewalSeen?.(renewed).catch((err: unknown) => this.deps.log.error({ err, serial: renewed }, 'renewal not settled; its grace period will'));
    if (!session.claim) this.#presence('connected', session, { serial: session.serial || undefined, peer: session.peer, monitored: session.monitored, grant: session.grant?.id, renewOnly: session.renewOnly });
  }

  #onClose(connection: Connection): void {
    const { session } = connection;
    if (!session || session.phase === 'closed') return;
    const wasReady = session.phase === 'ready';
    this.sessions.untrack(session);
    if (!wasReady) return;
    const cause = session.doomed?.reason ?? connection.endReason ?? 'closed';
    this.#telemetry.connectedDevices(this.sessions.readyCount);
    this.#telemetry.disconnected({ ...this.#facts(connection, session.deviceId), cause });
    if (!session.claim) this.#presence('disconnected', session, { reason: cause });
  }

  /** Lifecycle events for backend services whose policy lets them read $fleet/events/presence/#. */
  #presence(kind: 'connected' | 'disconnected', session: Session, details: Record<string, unknown>): void {
    const payload = Buffer.from(JSON.stringify({ deviceId: session.deviceId, at: this.deps.clock().toISOString(), ...details }));
    this.#aedes.publish({ cmd: 'publish', topic: `${PRESENCE_TOPIC}/${kind}/${session.deviceId}`, payload, qos: 0, retain: false, dup: false }, () => undefined);
  }

  #authorizePublish(client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void): void {
    // A null client is the broker itself (presence events, a will published on a peer's behalf).
    if (!client) return done(null);
    const connection = this.#connections.get(client.conn);
    const session = connection?.session;
    if (!connection || !session) return done(new Refusal('certificate_invalid', { detail: 'publish without an admitted session' }));
    if (session.doomed) return done(new Refusal(session.doomed.reason, this.#facts(connection, client.id)));
    if (session.claim) return this.#claims.authorizePublish(client, session.claim, packet, (reason, extra) => this.#refuse(reason, connection, client.id, extra), done);
    if (session.renewOnly && !this.#renew?.isRequest(packet.topic)) return done(this.#refuse('topic_denied', connection, client.id, { topic: packet.topic, detail: RENEW_ONLY }));
    if (this.#renew?.isRequest(packet.topic)) {
      packet.retain = false; // a request is served, never stored
      void this.#renew.request(client, session, packet.payload as Buffer);
      return done(null);
    }
    if (!session.policy.mayPublish(packet.topic)) {
      if (this.#monitored(session, 'topic_denied')) this.#wouldRefuse('topic_denied', connection, client.id, { topic: packet.topic });
      // MQTT 3.1.1 has no negative PUBACK: an unauthorized PUBLISH closes the connection.
      else return done(this.#refuse('topic_denied', connection, client.id, { topic: packet.topic }));
    }
    if (client.closed) return done(null); // its will, published as it leaves
    // Made at the first publish: a device that only listens never needs one.
    const wait = (connection.pacer ??= new PublishPacer(this.options.publish, this.#now())).take(this.#now());
    const routing = this.deps.sharedState?.routing;
    if (wait === 0 && (!routing || routing.open)) return done(null);
    if (wait > this.options.publish.maxBacklogMs) {
      return done(this.#refuse('publish_rate_exceeded', connection, client.id, { detail: `${wait} ms behind` }));
    }
    // Aedes reads this client's next packets only after this callback: the wait, for the
    // device's own rate or for the cluster's routing, is back-pressure on the device, not a
    // queue in the broker.
    const proceed = routing ? () => routing.admit(() => done(null)) : () => done(null);
    if (wait === 0) proceed();
    else setTimeout(proceed, wait);
  }

  #authorizeSubscribe(client: Client, subscription: Subscription, done: (error: Error | null, subscription?: Subscription | null) => void): void {
    const connection = this.#connections.get(client.conn);
    const session = connection?.session;
    // A null subscription makes Aedes answer 0x80 (failure) for this filter in the SUBACK.
    if (!connection || !session || session.doomed) return done(null, null);
    const held = (session.filters ??= new Set());
    if (!held.has(subscription.topic) && held.size >= this.options.maxSubscriptions) {
      this.#refuse('too_many_subscriptions', connection, client.id, { topic: subscription.topic, detail: `${held.size} held` });
      return done(null, null);
    }
    if (!session.claim && this.#renew?.isReply(subscription.topic)) {
      held.add(subscription.topic);
      return done(null, subscription);
    }
    if (session.renewOnly) {
      this.#refuse('topic_denied', connection, client.id, { topic: subscription.topic, detail: RENEW_ONLY });
      return done(null, null);
    }
    if (session.claim ? !this.#claims.maySubscribe(subscription.topic) : !session.policy.maySubscribe(subscription.topic)) {
      if (session.claim || !this.#monitored(session, 'topic_denied')) {
        this.#refuse('topic_denied', connection, client.id, { topic: subscription.topic });
        return done(null, null);
      }
      this.#wouldRefuse('topic_denied', connection, client.id, { topic: subscription.topic });
    }
    held.add(subscription.topic);
    done(null, subscription);
  }

  #onClientError(client: Client, error: Error): void {
    const connection = this.#connections.get(client.conn);
    if (error instanceof Refusal) {
      if (connection) connection.endReason = error.reason;
      return; // recorded where it was decided
    }
    if (error.message === RETAINED_UNREADABLE) {
      if (connection) connection.endReason = 'retained_unavailable';
      this.deps.log.warn({ event: 'retained_unavailable', clientId: client.id, err: error.cause }, 'the retained messages of a SUBSCRIBE could not be read from the MQTT state: connection closed, so the device subscribes again');
      return;
    }
    const code = (error as NodeJS.ErrnoException).code;
    if (code || ORDINARY_ENDINGS.has(error.message)) {
      if (connection) connection.endReason = error.message === 'keep alive timeout' ? 'keepalive_timeout' : (code ?? error.message);
      this.deps.log.debug({ event: 'connection_ended', clientId: client.id, cause: code ?? error.message }, 'connection ended');
      return;
    }
    if (!connection) return;
    const reason: Reason = error.message === 'connect did not arrive in time' ? 'connect_timeout' : 'protocol_violation';
    connection.endReason = reason;
    this.#refuse(reason, connection, client.id ?? undefined, { detail: error.message });
  }

  async #onRegistryEvent(event: RegistryEvent): Promise<void> {
    // The cache first: from here on no new CONNECT can be admitted on the old status.
    this.#cache.apply(event);
    const recordedAt = Date.parse(event.at);
    switch (event.type) {
      case 'certificate.status':
        if (event.status !== 'ACTIVE') {
          const reason: Reason = event.status === 'REVOKED' ? 'certificate_revoked' : 'certificate_inactive';
          for (const session of this.sessions.condemnFingerprint(event.fingerprint, reason, recordedAt)) this.#terminated(session, reason, recordedAt);
        }
        break;
      case 'device.status':
        if (event.status !== 'ACTIVE') {
          this.#grants.forgetDevice(event.deviceId);
          for (const session of this.sessions.condemnDevice(event.deviceId, 'device_disabled', recordedAt)) this.#terminated(session, 'device_disabled', recordedAt);
        }
        break;
      case 'ca.created':
      case 'ca.status':
        this.#jit.forget();
        break;
      case 'enforcement.changed':
        if (event.scope === 'listener') return this.#loadEnforcement();
        this.enforcement.setGroup(event.groupId!, event.mode);
        break;
      case 'grant.changed':
        return this.#grantChanged(event.grantId, event.deviceId, event.status);
      case 'claim_batch.status':
        this.#claims.apply(event);
        if (event.status === 'REVOKED') for (const session of this.sessions.condemnFingerprint(event.fingerprint, 'claim_batch_revoked', recordedAt)) this.#terminated(session, 'claim_batch_revoked', recordedAt);
        break;
      case 'group.membership':
        return this.#refreshAccess([event.deviceId]);
      case 'device.topology':
        // The device itself (gateway flag) and both gateways it moved between.
        return this.#refreshAccess([event.deviceId, event.gatewayId, event.previousGatewayId].filter((id): id is NonNullable<typeof id> => id !== undefined));
      case 'group.policy': {
        const members = [...this.sessions.all()].filter((s) => s.policy.groups.includes(event.groupId)).map((s) => s.deviceId);
        this.#access.invalidate(); // members not connected now are not known here
        return this.#refreshAccess([...new Set(members)], false);
      }
    }
  }

  async #grantChanged(grantId: string, deviceId: string, status: string): Promise<void> {
    if (status === 'ACTIVE') {
      this.#grants.put(await this.deps.registry.grant(grantId));
      return;
    }
    this.#grants.remove(grantId, deviceId);
    const admitted = [...this.sessions.ofDevice(deviceId)].filter((s) => s.grant?.id === grantId);
    for (const session of admitted) for (const closed of this.sessions.condemn([session], session.grant!.waives)) this.#terminated(closed, session.grant!.waives);
  }

  /**
   * Re-reads the access of devices whose grants changed and applies it to their live
   * sessions: a subscription the new policy no longer covers is removed.
   */
  async #refreshAccess(deviceIds: string[], invalidate = true): Promise<void> {
    if (invalidate) this.#access.invalidate(deviceIds);
    for (const deviceId of deviceIds) {
      const sessions = this.sessions.ofDevice(deviceId);
      if (sessions.length === 0) continue;
      const policy = await this.#policyOf(deviceId);
      for (const session of sessions) {
        session.policy = policy;
        for (const filter of session.filters ?? []) {
          if (isOwnTopic(deviceId, filter) || policy.maySubscribe(filter) || session.monitored) continue;
          session.filters!.delete(filter);
          unsubscribeSession(session, filter);
          this.deps.log.info({ event: 'grant_withdrawn', deviceId, topic: filter }, 'subscription removed after a policy change');
        }
      }
    }
  }

  #terminate(session: Session, reason: Reason, recordedAt?: number): void {
    closeSession(session);
    this.#terminated(session, reason, recordedAt);
  }

  #terminated(session: Session, reason: Reason, recordedAt?: number): void {
    this.#telemetry.terminated(reason, {
      deviceId: session.deviceId,
      serial: session.serial,
      fingerprint: session.fingerprint,
      latencyMs: recordedAt === undefined ? undefined : Math.max(0, this.deps.clock().getTime() - recordedAt),
    });
  }

  #refuse(reason: Reason, connection: Connection, clientId: string | undefined, extra: RefusalFacts = {}): Refusal {
    const facts = { ...this.#facts(connection, clientId), ...extra };
    this.#telemetry.refused(reason, facts);
    return new Refusal(reason, facts);
  }

  #wouldRefuse(reason: Reason, connection: Connection, clientId: string | undefined, extra: RefusalFacts = {}): void {
    const facts = { ...this.#facts(connection, clientId), ...extra };
    this.#telemetry.wouldRefuse(reason, facts);
    this.enforcement.record(reason, { clientId, deviceId: facts.deviceId, fingerprint: facts.fingerprint, peer: facts.peer }, this.deps.clock());
  }

  #facts(connection: Connection, clientId: string | undefined, detail?: string): RefusalFacts {
    const c = connection.peer.certificate;
    return {
      peer: connection.peer.address,
      clientId,
      deviceId: connection.session?.deviceId || undefined,
      serial: c?.serial,
      fingerprint: c?.fingerprint,
      subject: c?.subject,
      issuer: c?.issuer,
      detail,
    };
  }
}
