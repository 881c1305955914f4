// Fleet provisioning by claim, on the broker's side. A claim certificate (SAN
// urn:fleet:claim:<batch>) admits a claim session, never a device: it may publish only the
// two claim requests and subscribe only to their replies. Many devices share one claim
// certificate, so nothing on a claim topic is ever routed between clients: a request goes to
// the claim handler, and its reply is written to the one session that asked (Aedes'
// Client.publish delivers to that client alone) and let through authorizeForward only there.
// Per session: one CSR; per batch: a request rate. What a claim yields is provisioning's
// decision, behind a narrow port.
import type { Client, PublishPacket } from 'aedes';
import type { Logger } from 'pino';
import { Counter, type Registry as MetricsRegistry } from 'prom-client';
import type { Clock } from '../../registry/clock.js';
import type { RegistryEvent } from '../../registry/events.js';
import { chainVerified, firstRefusal, withinValidity, type Refused } from '../admission.js';
import { TokenBucket } from '../limits.js';
import type { DirectReplies } from './replies.js';
import type { PeerFacts } from '../peer.js';
import type { Reason, Refusal, RefusalFacts } from '../reasons.js';

export const CREATE_FROM_CSR_TOPIC = '$fleet/certificates/create-from-csr/json';
export const REGISTER_TOPIC = '$fleet/provision/register/json';
const REQUESTS: Readonly<Record<string, ClaimRequestName>> = { [CREATE_FROM_CSR_TOPIC]: 'create-from-csr', [REGISTER_TOPIC]: 'register' };
const REPLIES = new Set([CREATE_FROM_CSR_TOPIC, REGISTER_TOPIC].flatMap((t) => [`${t}/accepted`, `${t}/rejected`]));

type ClaimRequestName = 'create-from-csr' | 'register';

/** A claim topic (request or reply): nothing published on one is routed to subscribers. */
export function isClaimTopic(topic: string): boolean {
  return topic.startsWith(CREATE_FROM_CSR_TOPIC) || topic.startsWith('$fleet/provision/');
}

/** What the registry says of a claim certificate's batch. */
export interface ClaimStanding {
  batchId: string;
  status: 'ACTIVE' | 'REVOKED';
  notAfter: Date;
  rateLimit: { perSecond: number; burst: number };
}

/** How a rejected claim is counted: one refusal reason per kind. */
export type ClaimRejectionKind = 'invalid' | 'replayed' | 'identity' | 'hook' | 'unavailable';
export type ClaimOutcome = { ok: true; reply: Record<string, unknown> } | { ok: false; code: string; message: string; kind: ClaimRejectionKind };
export interface ClaimContext {
  batchId: string;
  clientId: string;
  peer: string;
}

/** What the broker needs for claims (a narrow port; provisioning answers it at the composition root). */
export interface ClaimPort {
  /** The claim batch whose claim certificate has this fingerprint, if any. */
  claimBatch(fingerprint: string): Promise<ClaimStanding | undefined>;
  createFromCsr(context: ClaimContext, request: { csr: string; parameters: Record<string, unknown> }): Promise<ClaimOutcome>;
  register(context: ClaimContext, request: { deviceId: string; serial: string; parameters?: Record<string, unknown> }): Promise<ClaimOutcome>;
}

/** A claim session, as long as its connection lives. */
export interface ClaimSession {
  batchId: string;
  peer: string;
  rateLimit: ClaimStanding['rateLimit'];
  /** Whether its one CSR was sent. */
  csrSent: boolean;
}

/** Rejections the broker itself answers, before provisioning is asked. */
export const CLAIM_SESSION_ERRORS = {
  claim_request_invalid: 'the payload is not the JSON object this topic takes',
  claim_csr_repeated: 'a claim session sends one CSR; connect again to send another',
  claim_rate_limited: 'the claim batch is over its request rate; try again later',
} as const;

const KIND_REASONS: Record<ClaimRejectionKind, Reason> = {
  invalid: 'claim_request_invalid',
  replayed: 'claim_replayed',
  identity: 'claim_identity_refused',
  hook: 'claim_hook_refused',
  unavailable: 'claim_unavailable',
};

// The batch in the client id keeps batches' sessions apart; the nonce (the device's serial
// number, say) keeps a batch's apart. No device id contains '/', so no claim session can
// ever take over a device's session, nor a device a claim session's.
const CLIENT_ID = /^claim\/([A-Za-z0-9._-]{1,64})\/[A-Za-z0-9._:-]{1,64}$/;
const MAX_CSR = 32 * 1024;
const STANDING_TTL_MS = 5000;

export interface ClaimTopicsDeps {
  port?: ClaimPort;
  log: Logger;
  clock: Clock;
  /** Monotonic milliseconds, for rate limits. */
  monotonicMs: () => number;
  metrics: MetricsRegistry;
  /** Where replies go out, to the asking session alone. */
  replies: DirectReplies;
  /** A batch's rate limit shared by every node (a cluster); a bucket per batch on this broker when absent. */
  takeToken?: (batchId: string, rate: { perSecond: number; burst: number }) => Promise<boolean>;
}

type Refuse = (reason: Reason, extra?: RefusalFacts) => Refusal;
type JsonObject = Record<string, unknown>;

function objectOf(payload: Buffer): JsonObject | undefined {
  try {
    const value: unknown = JSON.parse(payload.toString('utf8'));
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as JsonObject) : undefined;
  } catch {
    return undefined;
  }
}

const isParameters = (v: unknown): v is JsonObject => !!v && typeof v === 'object' && !Array.isArray(v);
const onlyKeys = (o: JsonObject, keys: string[]) => Object.keys(o).every((k) => keys.includes(k));

/** The request's payload in the shape its topic takes, or undefined. */
function requestOf(name: ClaimRequestName, payload: Buffer) {
  const body = objectOf(payload);
  if (!body || (body.parameters !== undefined && !isParameters(body.parameters))) return undefined;
  if (name === 'create-from-csr') {
    if (!onlyKeys(body, ['csr', 'parameters']) || typeof body.csr !== 'string' || body.csr.length > MAX_CSR) return undefined;
    return { name, csr: body.csr, parameters: body.parameters ?? {} };
  }
  if (!onlyKeys(body, ['deviceId', 'serial', 'parameters']) || typeof body.deviceId !== 'string' || typeof body.serial !== 'string') return undefined;
  return { name, deviceId: body.deviceId, serial: body.serial, parameters: body.parameters };
}

export class ClaimTopics {
  readonly #standings = new Map<string, { standing?: ClaimStanding; until: number }>();
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #requests: Counter<'request' | 'outcome'>;

  constructor(private readonly deps: ClaimTopicsDeps) {
    this.#requests = new Counter({ name: 'fleet_claim_requests_total', help: 'Claim requests, by request and outcome (accepted, or the code they were rejected with)', labelNames: ['request', 'outcome'], registers: [deps.metrics] });
  }

  /**
   * The CONNECT decision for a claim certificate: the TLS chain and validity as for any
   * certificate, then the session's shape, then the batch's standing in the registry (fail
   * closed: a registry that cannot answer refuses).
   */
  async admit(peer: PeerFacts, clientId: string, connect: { clean: boolean; will: boolean }, knownIssuer: (issuer: string) => boolean): Promise<{ ok: true; session: ClaimSession } | Refused> {
    const certificate = peer.certificate!;
    if (!certificate.claimBatch) return { ok: false, reason: 'claim_batch_unknown', detail: 'the claim URI names no batch' };
    const checked = firstRefusal([chainVerified, withinValidity], { peer, clientId, certificate }, { now: this.deps.clock, knownIssuer });
    if (checked) return checked;
    const batchInId = CLIENT_ID.exec(clientId)?.[1];
    if (batchInId !== certificate.claimBatch) return { ok: false, reason: 'claim_session_invalid', detail: `client id must be claim/${certificate.claimBatch}/<nonce>` };
    // Nothing of a claim session may outlive it: no stored session, no will.
    if (!connect.clean) return { ok: false, reason: 'claim_session_invalid', detail: 'a claim session is a clean session' };
    if (connect.will) return { ok: false, reason: 'claim_session_invalid', detail: 'a claim session has no will' };
    let standing: ClaimStanding | undefined;
    try {
      standing = await this.#standing(certificate.fingerprint);
    } catch (error) {
      return { ok: false, reason: 'registry_unavailable', detail: error instanceof Error ? error.message : String(error) };
    }
    if (!standing || standing.batchId !== certificate.claimBatch) return { ok: false, reason: 'claim_batch_unknown' };
    if (standing.status === 'REVOKED') return { ok: false, reason: 'claim_batch_revoked' };
    return { ok: true, session: { batchId: standing.batchId, peer: peer.address, rateLimit: standing.rateLimit, csrSent: false } };
  }

  /** A claim session publishes the two requests and nothing else (anything else closes it, as for a device). */
  authorizePublish(client: Client, claim: ClaimSession, packet: PublishPacket, refuse: Refuse, done: (error?: Error | null) => void): void {
    const name = REQUESTS[packet.topic];
    if (!name) return done(refuse('topic_denied', { topic: packet.topic }));
    packet.retain = false; // a request is never kept for later subscribers
    done(null);
    this.#handle(client, claim, name, packet, refuse).catch((err: unknown) => this.deps.log.error({ err, event: 'claim_request_failed', clientId: client.id }, 'claim request not answered'));
  }

  /** Only the replies to its own requests (exact topics, no wildcards). */
  maySubscribe(filter: string): boolean {
    return REPLIES.has(filter);
  }

  apply(event: RegistryEvent): void {
    if (event.type === 'claim_batch.status') this.#standings.delete(event.fingerprint);
  }

  async #standing(fingerprint: string): Promise<ClaimStanding | undefined> {
    const now = this.deps.monotonicMs();
    const cached = this.#standings.get(fingerprint);
    if (cached && cached.until > now) return cached.standing;
    if (!this.deps.port) return undefined;
    const standing = await this.deps.port.claimBatch(fingerprint);
    if (this.#standings.size >= 1000) this.#standings.clear();
    this.#standings.set(fingerprint, { standing, until: now + STANDING_TTL_MS });
    return standing;
  }

  async #handle(client: Client, claim: ClaimSession, name: ClaimRequestName, packet: PublishPacket, refuse: Refuse): Promise<void> {
    const reply = (accepted: boolean, body: JsonObject) => this.#reply(client, packet, accepted, body);
    const reject = (code: string, message: string, reason: Reason) => {
      refuse(reason, { code, topic: packet.topic });
      this.#requests.inc({ request: name, outcome: code });
      reply(false, { error: { code, message } });
    };
    const own = (code: keyof typeof CLAIM_SESSION_ERRORS, reason: Reason) => reject(code, CLAIM_SESSION_ERRORS[code], reason);

    let allowed: boolean;
    try {
      allowed = await this.#take(claim);
    } catch (error) {
      // Fail closed: a limit that cannot be checked admits no request.
      return reject('claim_unavailable', `the batch’s rate limit could not be checked: ${error instanceof Error ? error.message : String(error)}`, 'claim_unavailable');
    }
    if (!allowed) return own('claim_rate_limited', 'claim_rate_limited');
    const request = requestOf(name, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload));
    if (!request) return own('claim_request_invalid', 'claim_request_invalid');
    if (request.name === 'create-from-csr') {
      if (claim.csrSent) return own('claim_csr_repeated', 'claim_replayed');
      claim.csrSent = true;
    }
    const context = { batchId: claim.batchId, clientId: client.id, peer: claim.peer };
    let outcome: ClaimOutcome;
    try {
      if (!this.deps.port) throw new Error('no claim provisioning here');
      outcome = request.name === 'create-from-csr' ? await this.deps.port.createFromCsr(context, request) : await this.deps.port.register(context, request);
    } catch (error) {
      outcome = { ok: false, code: 'claim_unavailable', message: error instanceof Error ? error.message : String(error), kind: 'unavailable' };
    }
    if (!outcome.ok) return reject(outcome.code, outcome.message, KIND_REASONS[outcome.kind]);
    this.#requests.inc({ request: name, outcome: 'accepted' });
    reply(true, outcome.reply);
  }

  #take(claim: ClaimSession): Promise<boolean> {
    if (this.deps.takeToken) return this.deps.takeToken(claim.batchId, claim.rateLimit);
    return Promise.resolve(this.#bucket(claim).tryTake(this.deps.monotonicMs()));
  }

  /** One bucket per batch, shared by all its sessions on this broker, sized by the batch's rate limit. */
  #bucket(claim: ClaimSession): TokenBucket {
    let bucket = this.#buckets.get(claim.batchId);
    if (!bucket) {
      if (this.#buckets.size >= 10_000) this.#buckets.clear();
      this.#buckets.set(claim.batchId, (bucket = new TokenBucket({ ratePerSecond: claim.rateLimit.perSecond, burst: claim.rateLimit.burst }, this.deps.monotonicMs())));
    }
    return bucket;
  }

  /** Writes a reply to the client that asked, at the request's QoS (at most 1). */
  #reply(client: Client, request: PublishPacket, accepted: boolean, body: JsonObject): void {
    this.deps.replies.send(client, `${request.topic}/${accepted ? 'accepted' : 'rejected'}`, body, request.qos === 0 ? 0 : 1);
  }
}
