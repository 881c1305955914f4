// Fleet provisioning by claim, as firmware leaving the factory does it: with the batch's
// shared claim certificate it opens a claim session, sends the CSR of a key it made itself
// on create-from-csr, registers the certificate it got, and closes the session; the device
// then connects as itself. The steps in order, with what survives a failed session:
//
//   open session ─► create ─► register ─► done
//        │            │          │
//        └── refused ─┴──────────┴─► retried on a new session after backoff (busy service,
//                                    lost answer), resuming at register once a certificate
//                                    is held; any other refusal ends the claim with its code
//
// Every request waits its turn at the batch's pace first, so a fleet stays under the rate
// limit its claim batch was created with.
import { errorCode } from '../error-code.js';
import type { Timers } from '../timers.js';
import type { Pacer } from '../pacer.js';
import type { DeviceKey } from '../identity.js';
import { LatencyHistogram } from '../histogram.js';
import { Backoff, type BackoffPolicy, type Random } from './backoff.js';
import type { IssuedIdentity } from './credentials.js';
import type { JsonObject } from './mqtt-exchange.js';

export const CREATE_FROM_CSR_TOPIC = '$fleet/certificates/create-from-csr/json';
export const REGISTER_TOPIC = '$fleet/provision/register/json';

export type ClaimStep = 'create' | 'register';

/** One claim session, as the claim client uses it. */
export interface ClaimLink {
  /** Sends one request and resolves with its accepted reply; rejects with a coded error. */
  request(step: ClaimStep, body: JsonObject): Promise<JsonObject>;
  close(): Promise<void>;
}

/** Opens claim sessions: client id claim/<batch>/<nonce>, reply topics subscribed. */
export interface ClaimTransport {
  /** Resolves with the open session, or rejects with a coded error (the connect refusal). */
  open(nonce: string): Promise<ClaimLink>;
}

/** Where a claim client reports what happens to it; one object serves the whole fleet. */
export interface ClaimObserver {
  sessionOpened(): void;
  /** A refusal, at CONNECT or of a request: a CONNACK name, a socket error code, or the rejected reply's code. */
  refused(at: 'connect' | ClaimStep, code: string): void;
  accepted(step: ClaimStep, latencyMs: number): void;
  /** A request waited this long for its turn at the batch's pace. */
  paced(waitMs: number): void;
}

/**
 * Refusals after which the claim is tried again on a new claim session: the broker or the
 * service was busy or failed for a moment, or the answer was lost on the way. Every other
 * refusal is about the claim itself (a revoked batch, a device that exists, bad parameters,
 * the hook's no) and trying again would only be refused again.
 */
const RETRIED: ReadonlySet<string> = new Set([
  'server_unavailable', // CONNACK 3: throttled, or the registry could not answer
  'connect_timeout',
  'socket_closed',
  'claim_rate_limited',
  'claim_unavailable', // "try again on a new claim session" (docs/api.md)
  'reply_timeout',
  'connection_lost',
]);

/** Whether a refusal is worth another claim session. Socket error codes (ECONNRESET, …) are the network's, never the claim's. */
export function claimRetried(code: string): boolean {
  return RETRIED.has(code) || /^E[A-Z0-9_]+$/.test(code);
}

/** A claim that did not end in a registered certificate: the code of the refusal that ended it, and where. */
export class ClaimFailed extends Error {
  override readonly name = 'ClaimFailed';
  constructor(
    readonly code: string,
    readonly at: 'connect' | ClaimStep,
    message = `claim refused at ${at}: ${code}`,
  ) {
    super(message);
  }
}

export interface ClaimedIdentity extends IssuedIdentity {
  /** The device the claim created, as the service named it from the template. */
  deviceId: string;
}

export interface ClaimClientDeps {
  transport: ClaimTransport;
  pacer: Pacer;
  timers: Timers;
  random: Random;
  backoff: BackoffPolicy;
  /** Claim sessions tried, the first included, before the claim is given up. */
  maxSessions: number;
  observer: ClaimObserver;
  /** A new key and its CSR: a fresh one for every create-from-csr, since an answer lost may have certified the last one. */
  makeKey: (nonce: string) => Promise<DeviceKey>;
}

const text = (reply: JsonObject, key: string): string => {
  const value = reply[key];
  if (typeof value !== 'string' || value === '') throw Object.assign(new Error(`the accepted reply has no "${key}"`), { code: 'reply_unreadable' });
  return value;
};

export class ClaimClient {
  constructor(private readonly deps: ClaimClientDeps) {}

  /** Claims an identity under `nonce` (the device's serial number) with the template's parameters. */
  async claim(nonce: string, parameters: Record<string, string>): Promise<ClaimedIdentity> {
    const { deps } = this;
    const backoff = new Backoff(deps.backoff, deps.random);
    let held: ClaimedIdentity | undefined;
    let registerSent = false;
    let last: ClaimFailed | undefined;
    for (let session = 0; session < deps.maxSessions; session++) {
      if (session > 0) await this.#sleep(backoff.next());
      let link: ClaimLink;
      try {
        link = await deps.transport.open(nonce);
      } catch (error) {
        last = this.#goOn(this.#refused('connect', error));
        continue;
      }
      deps.observer.sessionOpened();
      try {
        if (!held) {
          const key = await deps.makeKey(nonce);
          const created = await this.#request(link, 'create', { csr: key.csrPem, parameters });
          if (created instanceof ClaimFailed) {
            last = this.#goOn(created);
            continue;
          }
          held = this.#identityOf(created, key);
        }
        const answerLostBefore = registerSent;
        registerSent = true;
        const registered = await this.#request(link, 'register', { deviceId: held.deviceId, serial: held.serial });
        if (!(registered instanceof ClaimFailed)) return held;
        // The last register's answer was lost, but it was served: the certificate is bound.
        if (answerLostBefore && registered.code === 'claim_already_registered') return held;
        last = this.#goOn(registered);
      } finally {
        await link.close();
      }
    }
    throw last ?? new ClaimFailed('error', 'connect');
  }

  /** One request at the batch's pace: the accepted reply, or the refusal (counted). */
  async #request(link: ClaimLink, step: ClaimStep, body: JsonObject): Promise<JsonObject | ClaimFailed> {
    const waited = await this.deps.pacer.take(this.deps.timers);
    if (waited > 0) this.deps.observer.paced(waited);
    const sent = this.deps.timers.now();
    try {
      const reply = await link.request(step, body);
      this.deps.observer.accepted(step, this.deps.timers.now() - sent);
      return reply;
    } catch (error) {
      return this.#refused(step, error);
    }
  }

  /** The identity an accepted create-from-csr reply hands over, with the key it certifies. */
  #identityOf(reply: JsonObject, key: DeviceKey): ClaimedIdentity {
    try {
      return { deviceId: text(reply, 'deviceId'), serial: text(reply, 'serial'), certificatePem: text(reply, 'certificate'), notBefore: text(reply, 'notBefore'), notAfter: text(reply, 'notAfter'), keyPem: key.keyPem };
    } catch (error) {
      throw this.#refused('create', error);
    }
  }

  /** Counts a refusal. */
  #refused(at: 'connect' | ClaimStep, error: unknown): ClaimFailed {
    const code = errorCode(error);
    this.deps.observer.refused(at, code);
    return new ClaimFailed(code, at);
  }

  /** A refusal the claim goes on after (returned), or the one that ends it (thrown). */
  #goOn(failure: ClaimFailed): ClaimFailed {
    if (!claimRetried(failure.code)) throw failure;
    return failure;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.deps.timers.at(this.deps.timers.now() + ms, resolve));
  }
}

/** The figures of a fleet's claims: sessions, requests accepted, refusals by code, and pacing. */
export class ClaimFigures implements ClaimObserver {
  sessions = 0;
  /** Requests accepted, by step. */
  readonly requests: Record<ClaimStep, number> = { create: 0, register: 0 };
  readonly latency: Record<ClaimStep, LatencyHistogram> = { create: new LatencyHistogram(), register: new LatencyHistogram() };
  /** Refusals by code, CONNECT refusals and rejected requests alike. */
  readonly refusals = new Map<string, number>();
  pacedRequests = 0;
  pacedMs = 0;

  sessionOpened(): void {
    this.sessions++;
  }

  refused(_at: 'connect' | ClaimStep, code: string): void {
    this.refusals.set(code, (this.refusals.get(code) ?? 0) + 1);
  }

  accepted(step: ClaimStep, latencyMs: number): void {
    this.requests[step]++;
    this.latency[step].record(latencyMs);
  }

  paced(waitMs: number): void {
    this.pacedRequests++;
    this.pacedMs += waitMs;
  }
}
