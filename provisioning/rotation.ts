// Issuing-CA rotation with explicit slots (after SPIRE's manager/slot.go and rotator): the
// current CA signs; half-way through its life the next CA is prepared — created, recorded,
// and so in the CA bundle and the broker's trust before it signs anything; at five sixths it
// becomes the current one and the previous one is superseded; a superseded CA retires (leaves
// every trust bundle) once no certificate still active or awaiting activation depends on it,
// or when it expires. Every threshold is read on the injected clock, so the whole cycle is
// tested by stepping a clock.
import { Counter, Gauge, type Registry as MetricsRegistry } from 'prom-client';
import type { Logger } from 'pino';
import type { Clock } from '../registry/clock.js';
import type { RegistryEvent } from '../registry/events.js';
import type { CaRecord, IssuingState } from '../registry/model.js';
import { nextGeneration, type IssuingRotation, type IssuingSlots } from '../registry/rotation.js';
import { coalesced } from './coalesce.js';
import { BACKDATE_MS } from './pki/hierarchy.js';
import { DEFAULT_CA_ID, type CaKeyring } from './pki/keyring.js';

/** Fractions of the current CA's lifetime at which the next one is prepared and activated. */
export const PREPARE_AT = 1 / 2;
export const ACTIVATE_AT = 5 / 6;

const ACTOR = { kind: 'system', id: 'rotation' } as const;
const STATES: readonly IssuingState[] = ['prepared', 'active', 'old', 'retired'];

export interface Thresholds {
  prepareAt: Date;
  activateAt: Date;
}

/** When, in a CA's life, its successor is prepared and activated. */
export function thresholds(ca: Pick<CaRecord, 'notBefore' | 'notAfter'>): Thresholds {
  const start = ca.notBefore.getTime();
  const lifetime = ca.notAfter.getTime() - start;
  return { prepareAt: new Date(start + lifetime * PREPARE_AT), activateAt: new Date(start + lifetime * ACTIVATE_AT) };
}

/** The successor's name: the same as the current CA's, with the next generation's number. */
export function successorName(commonName: string, generation: number): string {
  return /Issuing CA \d+/.test(commonName) ? commonName.replace(/Issuing CA \d+/, `Issuing CA ${generation}`) : `${commonName} ${generation}`;
}

export type RotationStep = { step: 'prepared' | 'activated'; caId: string } | { step: 'retired'; caId: string; why: 'no_dependents' | 'expired' };

/** What signs now: the one question enrollment, claims and renewal ask of rotation. */
export interface SigningCa {
  /** The id of the issuing CA that signs new certificates now. */
  current(): string;
  /** Whether a device certificate may be signed by this CA now (any CA outside rotation may). */
  signs(caId: string): boolean;
}

export interface RotatorDeps {
  rotation: Pick<IssuingRotation, 'slots' | 'adoptFirst' | 'prepare' | 'activateNext' | 'retire' | 'dependents'>;
  cas: { get(id: string): Promise<CaRecord>; list(): Promise<CaRecord[]> };
  keyring: CaKeyring;
  clock: Clock;
  log: Logger;
  metrics: MetricsRegistry;
  /** Where a CA's CRL is published (the new CA's certificate names its parent's). */
  crlUrl(caId: string): string;
}

export class CaRotator implements SigningCa {
  #slots!: IssuingSlots;
  #timer?: NodeJS.Timeout;
  #checking?: Promise<void>;
  readonly #states: Gauge<'ca' | 'state'>;
  readonly #steps: Counter<'step'>;
  /** Checks the thresholds once and takes the step due, if any; checks never overlap. */
  readonly tick: () => Promise<void>;
  #lastSteps: RotationStep[] = [];

  constructor(private readonly deps: RotatorDeps) {
    const registers = [deps.metrics];
    this.#states = new Gauge({ name: 'fleet_issuing_ca_state', help: 'Issuing CAs in rotation: 1 for the state each is in (prepared, active, old, retired)', labelNames: ['ca', 'state'], registers });
    this.#steps = new Counter({ name: 'fleet_ca_rotation_steps_total', help: 'Issuing-CA rotation steps taken, by step', labelNames: ['step'], registers });
    for (const step of ['prepared', 'activated', 'retired']) this.#steps.inc({ step }, 0);
    this.tick = coalesced(async () => {
      this.#lastSteps = await this.#tick();
    });
  }

  /** Adopts the first issuing CA as the current one when rotation has none yet. */
  async start(): Promise<void> {
    this.#show(await this.deps.rotation.adoptFirst(DEFAULT_CA_ID, ACTOR));
  }

  /** Checks every `intervalMs` (and now). */
  run(intervalMs: number): void {
    const check = () => {
      this.#checking = this.tick().catch((err: unknown) => this.deps.log.error({ err, event: 'ca_rotation_failed' }, 'issuing-CA rotation step failed; retried at the next check'));
    };
    check();
    this.#timer = setInterval(check, intervalMs);
    this.#timer.unref();
  }

  /** Stops the checks; resolves once a check under way has finished. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#checking;
  }

  /** Takes the step due now, if any, and returns what it did. */
  async step(): Promise<RotationStep[]> {
    await this.tick();
    return this.#lastSteps;
  }

  get slots(): IssuingSlots {
    return this.#slots;
  }

  current(): string {
    return this.#slots.current.caId;
  }

  signs(caId: string): boolean {
    const { current, next, old, retired } = this.#slots;
    if (caId === current.caId) return true;
    return ![next, ...old, ...retired].some((c) => c?.caId === caId);
  }

  /** Another process may have taken a step: follow the registry (and take up the CA's key). */
  async apply(event: RegistryEvent): Promise<void> {
    if (event.type !== 'ca.rotation') return;
    await this.deps.keyring.adopt(await this.deps.cas.get(event.caId));
    const slots = await this.deps.rotation.slots();
    if (slots) this.#show(slots);
  }

  /** The thresholds of the current CA, for operators. */
  async thresholds(): Promise<Thresholds> {
    return thresholds(await this.deps.cas.get(this.current()));
  }

  async #tick(): Promise<RotationStep[]> {
    const now = this.deps.clock();
    const slots = (await this.deps.rotation.slots()) ?? (await this.deps.rotation.adoptFirst(DEFAULT_CA_ID, ACTOR));
    const steps: RotationStep[] = [];
    for (const old of slots.old) {
      const record = await this.deps.cas.get(old.caId);
      const why = record.notAfter.getTime() <= now.getTime() ? 'expired' : (await this.deps.rotation.dependents(old.caId, now)) === 0 ? 'no_dependents' : undefined;
      if (!why) continue;
      await this.deps.rotation.retire(old.caId, why, ACTOR);
      steps.push({ step: 'retired', caId: old.caId, why });
    }
    const current = await this.deps.cas.get(slots.current.caId);
    const due = thresholds(current);
    // A CA prepared late (the service was down half-way) still waits one check before it
    // signs, so it is served in the bundle before its first certificate.
    if (!slots.next && now >= due.prepareAt) steps.push({ step: 'prepared', caId: await this.#prepare(current, slots) });
    else if (slots.next && now >= due.activateAt) {
      await this.deps.rotation.activateNext(ACTOR);
      steps.push({ step: 'activated', caId: slots.next.caId });
    }
    for (const step of steps) {
      this.#steps.inc({ step: step.step });
      this.deps.log.info({ event: 'ca_rotation', ...step }, `issuing CA ${step.caId} ${step.step}`);
    }
    this.#show((await this.deps.rotation.slots())!);
    return steps;
  }

  /** Creates the successor of `current` with the same shape and lifetime, and records it as next. */
  async #prepare(current: CaRecord, slots: IssuingSlots): Promise<string> {
    const generation = nextGeneration(slots);
    const taken = new Set((await this.deps.cas.list()).flatMap((c) => [c.id, c.name]));
    let id = `issuing-${generation}`;
    for (let n = 2; taken.has(id); n++) id = `issuing-${generation}-${n}`;
    const parentId = current.parentId!;
    const signer = this.deps.keyring.get(current.id);
    const record = await this.deps.keyring.create(
      {
        id,
        name: id,
        parentId,
        crlUrl: this.deps.crlUrl(parentId),
        commonName: successorName(/CN=([^,\n]+)/.exec(current.subject)?.[1] ?? `Fleet Issuing CA`, generation),
        // The same span from notBefore to notAfter as the current one (validity() backdates).
        lifetimeMs: current.notAfter.getTime() - current.notBefore.getTime() - BACKDATE_MS,
        pathLength: signer?.pathLength,
      },
      this.deps.clock,
    );
    try {
      await this.deps.rotation.prepare(record, ACTOR);
    } catch (error) {
      await this.deps.keyring.discard(id);
      throw error;
    }
    return id;
  }

  #show(slots: IssuingSlots): void {
    this.#slots = slots;
    for (const ca of [slots.current, slots.next, ...slots.old, ...slots.retired]) {
      if (!ca) continue;
      for (const state of STATES) this.#states.set({ ca: ca.caId, state }, ca.state === state ? 1 : 0);
    }
  }
}
