// Live and in-flight sessions, indexed by certificate fingerprint and by device id, so a
// status change reaches every connection that used the certificate, including one that is
// still being admitted when the change lands (DESIGN invariant 3).
import { AccessPolicy } from './access.js';
import type { ClaimSession } from './fleet-topics/claim.js';
import type { Reason } from './reasons.js';

export type SessionPhase = 'admitting' | 'authenticated' | 'ready' | 'closed';

export interface Session {
  readonly fingerprint: string;
  deviceId: string;
  readonly serial: string;
  readonly peer: string;
  /** The certificate issuer's name, to re-check the session when the trusted CAs change. */
  readonly issuer: string;
  phase: SessionPhase;
  /** Set when a status change condemned the session; it must not live past its next step. */
  doomed?: { reason: Reason; recordedAt?: number };
  policy: AccessPolicy;
  /** The filters it holds, to count them and to re-check them when its policy changes. */
  filters?: Set<string>;
  /** Admitted in monitor mode: failed checks are recorded, not enforced. */
  monitored?: boolean;
  /** An expired certificate inside its CA's renewal window: the renewal topic and its replies only. */
  renewOnly?: boolean;
  /** A claim session (claim certificate): claim topics only, never a device. */
  claim?: ClaimSession;
  /** Admitted through a break-glass grant: ends when the grant does. */
  grant?: { id: string; waives: Reason; timer?: NodeJS.Timeout };
  /** The connection's MQTT client, as much of it as a session needs. */
  readonly client: SessionClient;
}

/** What a session does to its connection (Aedes' Client has both). */
export interface SessionClient {
  close(): void;
  unsubscribe(packet: { unsubscriptions: string[] }, done: () => void): void;
}

const ignore = () => undefined;

export function newSession(init: Pick<Session, 'fingerprint' | 'deviceId' | 'serial' | 'peer' | 'issuer' | 'client'>): Session {
  // Every field from the start, in one order, the optional ones undefined: every session then
  // has the same shape, so the checks each PUBLISH makes (doomed, claim, renewOnly, policy)
  // stay fast. Built by spreading `init` and adding fields as they came, sessions took so
  // many shapes that those reads missed V8's lookup caches on every message.
  return {
    fingerprint: init.fingerprint,
    deviceId: init.deviceId,
    serial: init.serial,
    peer: init.peer,
    issuer: init.issuer,
    client: init.client,
    phase: 'admitting',
    doomed: undefined,
    policy: AccessPolicy.own(init.deviceId),
    filters: undefined,
    monitored: undefined,
    renewOnly: undefined,
    claim: undefined,
    grant: undefined,
  };
}

/** Closes a session's connection. */
export function closeSession(session: Session): void {
  session.client.close();
}

/** Removes one of a session's subscriptions. */
export function unsubscribeSession(session: Session, filter: string): void {
  session.client.unsubscribe({ unsubscriptions: [filter] }, ignore);
}

// A key nearly always has one session (two only while one takes over from the other), so the
// index holds the session itself and an array only when there are more: a Set per key would
// cost ten thousand idle devices a hash table each, twice over.
type Slot = Session | Session[];

function addTo<K>(index: Map<K, Slot>, key: K, session: Session) {
  const slot = index.get(key);
  if (slot === undefined) index.set(key, session);
  else if (Array.isArray(slot)) {
    if (!slot.includes(session)) slot.push(session);
  } else if (slot !== session) index.set(key, [slot, session]);
}

function removeFrom<K>(index: Map<K, Slot>, key: K, session: Session) {
  const slot = index.get(key);
  if (slot === session) index.delete(key);
  else if (Array.isArray(slot)) {
    const remaining = slot.filter((s) => s !== session);
    if (remaining.length === 0) index.delete(key);
    else index.set(key, remaining.length === 1 ? remaining[0]! : remaining);
  }
}

function sessionsIn(slot: Slot | undefined): readonly Session[] {
  if (slot === undefined) return [];
  return Array.isArray(slot) ? slot : [slot];
}

export class SessionIndex {
  readonly #byFingerprint = new Map<string, Slot>();
  readonly #byDevice = new Map<string, Slot>();
  #ready = 0;

  track(session: Session): void {
    addTo(this.#byFingerprint, session.fingerprint, session);
    addTo(this.#byDevice, session.deviceId, session);
  }

  markReady(session: Session): void {
    if (session.phase !== 'ready' && session.phase !== 'closed') this.#ready++;
    session.phase = 'ready';
  }

  untrack(session: Session): void {
    if (session.phase === 'ready') this.#ready--;
    session.phase = 'closed';
    clearTimeout(session.grant?.timer);
    removeFrom(this.#byFingerprint, session.fingerprint, session);
    removeFrom(this.#byDevice, session.deviceId, session);
  }

  /**
   * Condemns every session of a certificate. Ready sessions are closed now; sessions still
   * being admitted are refused when their admission resumes. Returns the ready ones closed.
   */
  condemnFingerprint(fingerprint: string, reason: Reason, recordedAt?: number): Session[] {
    return this.#condemn(sessionsIn(this.#byFingerprint.get(fingerprint)), reason, recordedAt);
  }

  condemnDevice(deviceId: string, reason: Reason, recordedAt?: number): Session[] {
    return this.#condemn(sessionsIn(this.#byDevice.get(deviceId)), reason, recordedAt);
  }

  /** Condemns the given sessions (for example those a grant or a trust change no longer covers). */
  condemn(sessions: Iterable<Session>, reason: Reason): Session[] {
    return this.#condemn([...new Set(sessions)], reason);
  }

  /** Moves a session to another device id (monitor mode learns the claimed id only at CONNECT). */
  rename(session: Session, deviceId: string): void {
    removeFrom(this.#byDevice, session.deviceId, session);
    session.deviceId = deviceId;
    addTo(this.#byDevice, deviceId, session);
  }

  /** The live sessions of a device (normally one; more during a takeover). */
  ofDevice(deviceId: string): Session[] {
    return sessionsIn(this.#byDevice.get(deviceId)).filter((s) => s.phase !== 'closed');
  }

  ofFingerprint(fingerprint: string): Session[] {
    return sessionsIn(this.#byFingerprint.get(fingerprint)).filter((s) => s.phase !== 'closed');
  }

  *all(): IterableIterator<Session> {
    for (const slot of this.#byDevice.values()) yield* sessionsIn(slot);
  }

  /** A device with an admitted session that no status change has condemned. */
  isConnected(deviceId: string): boolean {
    for (const session of sessionsIn(this.#byDevice.get(deviceId))) if (session.phase === 'ready' && !session.doomed) return true;
    return false;
  }

  get readyCount(): number {
    return this.#ready;
  }

  #condemn(sessions: readonly Session[], reason: Reason, recordedAt?: number): Session[] {
    const closed: Session[] = [];
    // A copy: closing a session may change the index under the loop.
    for (const session of [...sessions]) {
      if (session.doomed) continue; // already condemned by an earlier event
      session.doomed = { reason, recordedAt };
      if (session.phase === 'ready') {
        closed.push(session);
        closeSession(session);
      }
    }
    return closed;
  }
}
