// $fleet/certificates/renew/json: a device renews its certificate over its own MQTT session.
// It subscribes to the two reply topics, publishes {"csr": "<PEM>"} to the request topic,
// and the answer comes on …/accepted (the new certificate) or …/rejected (a coded error).
// The request is served by the broker and reaches no subscriber; a reply is delivered to the
// session that asked and to no other, though every device subscribes to the same reply topics.
import type { Client } from 'aedes';
import type { Logger } from 'pino';
import type { Fingerprint } from '../../registry/ids.js';
import type { DirectReplies } from './replies.js';

export const RENEW_TOPIC = '$fleet/certificates/renew/json';
export const RENEW_ACCEPTED = `${RENEW_TOPIC}/accepted`;
export const RENEW_REJECTED = `${RENEW_TOPIC}/rejected`;

/** The renewal request and its replies: served by the broker, never routed between clients. */
export function isRenewTopic(topic: string): boolean {
  return topic.startsWith(RENEW_TOPIC);
}

/** Refusals of the request itself; the renewal's own refusals come from provisioning's catalogues. */
export const RENEW_REQUEST_ERRORS = {
  request_malformed: 'the payload is not JSON {"csr": "<PEM>"}',
  renewal_in_progress: 'this session has a renewal in flight; wait for its answer',
} as const;

export type RenewalOutcome = { ok: true; certificate: Record<string, unknown> } | { ok: false; code: string; message: string };

/** What the broker needs to renew a certificate (a narrow port; provisioning serves it). */
export interface RenewalPort {
  renew(fingerprint: Fingerprint, csrPem: string): Promise<RenewalOutcome>;
  /** How long after notAfter a certificate of this CA may still renew itself (0: not at all). */
  renewalWindowMs(caId: string): Promise<number>;
}

export interface RenewingSession {
  fingerprint: string;
  deviceId: string;
  /** The filters the session holds. */
  filters?: ReadonlySet<string>;
}

export class RenewTopic {
  readonly #inFlight = new WeakSet<Client>();

  constructor(
    private readonly port: RenewalPort,
    private readonly replies: DirectReplies,
    private readonly log: Logger,
  ) {}

  isRequest(topic: string): boolean {
    return topic === RENEW_TOPIC;
  }

  /** The reply topics, which a device may subscribe to exactly (and only its own replies reach it). */
  isReply(topicOrFilter: string): boolean {
    return topicOrFilter === RENEW_ACCEPTED || topicOrFilter === RENEW_REJECTED;
  }

  /** Serves one request; resolves once it is answered. */
  async request(client: Client, session: RenewingSession, payload: Buffer): Promise<void> {
    // Issuing a certificate nobody hears of would only start its predecessor's grace period.
    if (!session.filters?.has(RENEW_ACCEPTED)) {
      this.log.warn({ event: 'renewal_unanswerable', deviceId: session.deviceId }, `renewal request ignored: the session is not subscribed to ${RENEW_ACCEPTED}`);
      return;
    }
    if (this.#inFlight.has(client)) return this.#reject(client, session, { code: 'renewal_in_progress', message: RENEW_REQUEST_ERRORS.renewal_in_progress });
    const csr = csrOf(payload);
    if (csr === undefined) return this.#reject(client, session, { code: 'request_malformed', message: RENEW_REQUEST_ERRORS.request_malformed });
    this.#inFlight.add(client);
    try {
      const outcome = await this.port.renew(session.fingerprint as Fingerprint, csr).catch((err: unknown): RenewalOutcome => {
        this.log.error({ err, deviceId: session.deviceId }, 'renewal failed');
        return { ok: false, code: 'internal_error', message: 'the service failed; the failure is logged' };
      });
      if (outcome.ok) {
        this.#send(client, RENEW_ACCEPTED, outcome.certificate);
        this.log.info({ event: 'renewed', deviceId: session.deviceId, via: 'mqtt', serial: outcome.certificate.serial }, 'certificate renewed over MQTT');
      } else {
        this.#reject(client, session, outcome);
      }
    } finally {
      this.#inFlight.delete(client);
    }
  }

  #reject(client: Client, session: RenewingSession, error: { code: string; message: string }): void {
    this.log.warn({ event: 'renewal_refused', deviceId: session.deviceId, via: 'mqtt', code: error.code }, error.message);
    this.#send(client, RENEW_REJECTED, { error: { code: error.code, message: error.message } });
  }

  // QoS 0, straight to this client's connection: no other session routes it, and it is never
  // queued for a later session (a device that misses it asks again with its current certificate).
  #send(client: Client, topic: string, body: unknown): void {
    this.replies.send(client, topic, body);
  }
}

function csrOf(payload: Buffer): string | undefined {
  try {
    const body = JSON.parse(payload.toString('utf8')) as unknown;
    if (body && typeof body === 'object' && !Array.isArray(body)) {
      const csr = (body as { csr?: unknown }).csr;
      if (typeof csr === 'string' && csr.length > 0 && csr.length <= 32768 && Object.keys(body).length === 1) return csr;
    }
  } catch {
    // not JSON
  }
  return undefined;
}
