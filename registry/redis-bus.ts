// The cluster's event bus: registry events over Redis pub/sub, so a status change made on
// one node reaches the broker of every node.
//
// publish() delivers to this node's own handlers first (its broker closes its sessions),
// then publishes on Redis, then waits — bounded by confirmTimeoutMs — until every other
// node that received the message confirms it has handled it. PUBLISH answers with the
// number of subscribers that received the message, one per node, so the wait knows how many
// confirmations to expect without a membership list. "Acknowledged" then means durable,
// published and acted on by every node the bus reached, as it does in one process; a node
// that does not confirm in time is logged (bus_confirm_timeout), and is one that is cut off
// or stalled: it fails closed and re-reads the registry when it comes back (below).
//
// Pub/sub keeps nothing for a subscriber that is away, so a node must know when it may have
// missed something. Each node publishes a heartbeat and listens for its own: while it has
// not heard itself within three heartbeats (or its subscriber connection is down), it is
// cut off. The first heartbeat it hears again proves the path pub → Redis → sub works, and
// only then do the `restored` handlers run (drop caches, re-check live sessions); until they
// have succeeded the node stays "not caught up".
//
// A change the bus could not take (Redis away when it was published) is durable in the
// registry, and its publish() fails, so the caller does not take it as announced. This node
// keeps it and announces it during its catch-up, before it counts as caught up again: nodes
// that never lost the bus (only this node was cut off) hear of it that way; nodes that were cut
// off too re-read the registry in their own catch-up, whichever comes first.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { deliver, type EventBus, type EventHandler, type RegistryEvent } from './events.js';
import { redisReady } from './redis-ready.js';

export interface RedisBusOptions {
  /** redis://… */
  url: string;
  /** This node's name, unique in the cluster. */
  node: string;
  heartbeatMs: number;
  /** How long publish() waits for the other nodes to confirm an event. */
  confirmTimeoutMs: number;
  /** Channel prefix, so several clusters can share one Redis. */
  prefix: string;
}

export const DEFAULT_REDIS_BUS_OPTIONS = Object.freeze({ heartbeatMs: 1000, confirmTimeoutMs: 2000, prefix: 'fleet' });

export class NodeNameInUseError extends Error {
  override readonly name = 'NodeNameInUseError';
}

/** The bus is cut off from Redis: the change is durable, but it could not be published. */
export class BusUnavailableError extends Error {
  override readonly name = 'BusUnavailableError';
}

/** What a node's Redis connections give up with when Redis has not answered in time. */
export function noAnswerFromRedis(url: string, timeoutMs: number): BusUnavailableError {
  return new BusUnavailableError(`no answer from Redis at ${url} within ${timeoutMs} ms`);
}

type Message =
  | { kind: 'events'; origin: string; id: string; events: RegistryEvent[] }
  | { kind: 'heartbeat'; origin: string }
  | { kind: 'question'; origin: string; id: string; question: string; payload: unknown };

interface Reply {
  id: string;
  from: string;
  answer?: unknown;
  failed?: boolean;
}

interface Pending {
  expected: number;
  replies: Reply[];
  settle(): void;
}

export type BusState = {
  connected: boolean;
  caughtUp: boolean;
  since: string;
  /** Batches of events this node could not publish yet; announced when the bus is back. */
  unannounced: number;
};

export class RedisEventBus implements EventBus {
  readonly #handlers = new Set<EventHandler>();
  readonly #answerers = new Map<string, (payload: unknown) => unknown>();
  readonly #lostHandlers: (() => void)[] = [];
  readonly #restoredHandlers: (() => Promise<void>)[] = [];
  readonly #pending = new Map<string, Pending>();
  /** Durable changes the bus could not take, oldest first. */
  readonly #unannounced: RegistryEvent[][] = [];
  readonly #pub: Redis;
  readonly #sub: Redis;
  readonly #channel: string;
  readonly #replyChannel: string;
  #heartbeat?: NodeJS.Timeout;
  #lastHeard = -Infinity;
  #connected = false;
  #caughtUp = false;
  #restoring?: Promise<void>;
  /** Counts losses, so a catch-up that a new loss overtook is run again. */
  #losses = 0;
  #since = new Date().toISOString();
  #closed = false;

  constructor(
    private readonly options: RedisBusOptions,
    private readonly log: Logger,
  ) {
    this.#channel = `${options.prefix}:bus`;
    this.#replyChannel = `${options.prefix}:reply:${options.node}`;
    // Publishing fails at once while Redis is away instead of queueing: a revocation must
    // not be acknowledged on the strength of a command still waiting in a client buffer.
    this.#pub = new Redis(options.url, { connectionName: `fleet-bus-pub-${options.node}`, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    this.#sub = new Redis(options.url, { connectionName: `fleet-bus-sub-${options.node}` });
    for (const [role, redis] of [
      ['pub', this.#pub],
      ['sub', this.#sub],
    ] as const) {
      redis.on('error', (err: Error) => this.log.debug({ event: 'redis_error', role, err: err.message }, 'event bus connection error'));
    }
    this.#sub.on('close', () => this.#lose('subscriber connection closed'));
    this.#sub.on('message', (channel: string, text: string) => this.#onMessage(channel, text));
  }

  /** Connects and waits until this node hears itself on the bus; fails after timeoutMs. */
  async start(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const unavailable = () => noAnswerFromRedis(this.options.url, timeoutMs);
    // Both connections ready before the name check and the subscription.
    await redisReady([this.#pub, this.#sub], timeoutMs, unavailable);
    // Two nodes of one name would take each other's events for their own and skip them.
    if ((await this.#pub.publish(this.#replyChannel, JSON.stringify({ id: 'name-check', from: this.options.node }))) > 0) {
      throw new NodeNameInUseError(`another node on this Redis is already called ${this.options.node}; give each node its own --node-name`);
    }
    await this.#sub.subscribe(this.#channel, this.#replyChannel);
    this.#heartbeat = setInterval(() => this.#beat(), this.options.heartbeatMs);
    this.#heartbeat.unref();
    this.#beat();
    while (!this.#caughtUp) {
      if (Date.now() > deadline) throw unavailable();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  get state(): BusState {
    return { connected: this.#connected, caughtUp: this.#caughtUp, since: this.#since, unannounced: this.#unannounced.length };
  }

  /** Runs when the bus is cut off (events may be missed from here on). */
  onLost(handler: () => void): void {
    this.#lostHandlers.push(handler);
  }

  /** Runs when the bus is back, before the node counts as caught up; a rejection retries on the next heartbeat. */
  onRestored(handler: () => Promise<void>): void {
    this.#restoredHandlers.push(handler);
  }

  async publish(events: readonly RegistryEvent[]): Promise<void> {
    if (events.length === 0) return;
    // This node's handlers fail or not, the other nodes are told: the change is durable.
    const local = await deliver(this.#handlers, events).then(
      () => undefined,
      (err: unknown) => ({ err }),
    );
    try {
      await this.#announce(events);
    } catch (error) {
      // Kept for the catch-up; and a node that cannot publish cannot be sure it hears
      // either, so it counts itself cut off until its own heartbeat comes back.
      this.#unannounced.push([...events]);
      this.log.warn({ event: 'bus_events_held', types: events.map((e) => e.type), held: this.#unannounced.length }, 'the event bus could not take a change; it is announced when the bus is back');
      this.#lose('events not published');
      throw error;
    }
    if (local) throw local.err;
  }

  /** Publishes events to the other nodes and waits for their confirmations. */
  async #announce(events: readonly RegistryEvent[]): Promise<void> {
    const id = randomUUID();
    const receivers = await this.#send({ kind: 'events', origin: this.options.node, id, events: [...events] });
    const replies = await this.#await(id, receivers);
    const failed = replies.filter((r) => r.failed).map((r) => r.from);
    if (failed.length > 0) this.log.error({ event: 'bus_handler_failed', nodes: failed, types: events.map((e) => e.type) }, 'nodes failed to apply registry events');
  }

  /** Announces what the bus could not take before, oldest first; stops at the first failure. */
  async #announceHeld(): Promise<void> {
    const batches = this.#unannounced.length;
    while (this.#unannounced.length > 0) {
      await this.#announce(this.#unannounced[0]!);
      this.#unannounced.shift();
    }
    if (batches > 0) this.log.info({ event: 'bus_events_announced', batches }, 'announced the changes the bus could not take while it was away');
  }

  subscribe(handler: EventHandler): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  /** Answers a question other nodes ask with ask(). */
  answer(question: string, handler: (payload: unknown) => unknown): void {
    this.#answerers.set(question, handler);
  }

  /** Asks every other node; resolves with the answers that came within confirmTimeoutMs. */
  async ask(question: string, payload: unknown): Promise<unknown[]> {
    const id = randomUUID();
    const receivers = await this.#send({ kind: 'question', origin: this.options.node, id, question, payload });
    return (await this.#await(id, receivers)).filter((r) => !r.failed).map((r) => r.answer);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    // Durable in the registry all the same; nodes that were cut off too re-read it when they catch up.
    if (this.#unannounced.length > 0) this.log.warn({ event: 'bus_events_unannounced', batches: this.#unannounced.length }, 'closing with changes the event bus never took');
    for (const pending of this.#pending.values()) pending.settle();
    this.#handlers.clear();
    this.#pub.disconnect();
    this.#sub.disconnect();
    return Promise.resolve();
  }

  async #send(message: Message): Promise<number> {
    try {
      return await this.#pub.publish(this.#channel, JSON.stringify(message));
    } catch (cause) {
      throw new BusUnavailableError('the event bus (Redis) is unreachable', { cause });
    }
  }

  /** Waits for the replies of every other receiver, or until the confirmation timeout. */
  #await(id: string, receivers: number): Promise<Reply[]> {
    // This node's own subscriber is among the receivers when it is connected.
    const expected = receivers - (this.#connected ? 1 : 0);
    if (expected <= 0 || !this.#connected) return Promise.resolve([]);
    return new Promise((resolve) => {
      const replies: Reply[] = [];
      const timer = setTimeout(() => {
        this.log.warn({ event: 'bus_confirm_timeout', id, expected, confirmedBy: replies.map((r) => r.from) }, 'not every node confirmed in time');
        settle();
      }, this.options.confirmTimeoutMs);
      const settle = () => {
        clearTimeout(timer);
        this.#pending.delete(id);
        resolve(replies);
      };
      this.#pending.set(id, { expected, replies, settle });
    });
  }

  #onMessage(channel: string, text: string): void {
    let message: Message | Reply;
    try {
      message = JSON.parse(text) as Message | Reply;
    } catch {
      this.log.warn({ event: 'bus_message_malformed', channel }, 'ignored a malformed bus message');
      return;
    }
    if (channel === this.#replyChannel) return this.#onReply(message as Reply);
    const m = message as Message;
    if (m.kind === 'heartbeat') {
      if (m.origin === this.options.node) this.#heard();
      return;
    }
    if (m.origin === this.options.node) return; // delivered locally before it was sent
    if (m.kind === 'events') {
      deliver(this.#handlers, m.events).then(
        () => this.#reply(m.origin, { id: m.id, from: this.options.node }),
        (err: unknown) => {
          this.log.error({ err, event: 'bus_handler_failed', types: m.events.map((e) => e.type) }, 'a registry event from another node could not be applied');
          this.#reply(m.origin, { id: m.id, from: this.options.node, failed: true });
        },
      );
    } else if (m.kind === 'question') {
      const answerer = this.#answerers.get(m.question);
      Promise.resolve(answerer ? answerer(m.payload) : undefined).then(
        (answer) => this.#reply(m.origin, { id: m.id, from: this.options.node, answer }),
        () => this.#reply(m.origin, { id: m.id, from: this.options.node, failed: true }),
      );
    }
  }

  #onReply(reply: Reply): void {
    const pending = this.#pending.get(reply.id);
    if (!pending) return;
    pending.replies.push(reply);
    if (pending.replies.length >= pending.expected) pending.settle();
  }

  #reply(to: string, reply: Reply): void {
    this.#pub.publish(`${this.options.prefix}:reply:${to}`, JSON.stringify(reply)).catch(() => undefined);
  }

  #beat(): void {
    if (this.#closed) return;
    if (this.#connected && performance.now() - this.#lastHeard > 3 * this.options.heartbeatMs) this.#lose('own heartbeat not heard');
    this.#send({ kind: 'heartbeat', origin: this.options.node }).catch(() => this.#lose('heartbeat not published'));
  }

  #heard(): void {
    this.#lastHeard = performance.now();
    if (this.#connected) return;
    this.#connected = true;
    this.#restore();
  }

  #lose(why: string): void {
    if (this.#closed || (!this.#connected && !this.#caughtUp)) return;
    this.#connected = false;
    this.#caughtUp = false;
    this.#losses++;
    this.#since = new Date().toISOString();
    this.log.warn({ event: 'bus_lost', why }, 'cut off from the event bus: cached verdicts are not trusted until it is back');
    for (const handler of this.#lostHandlers) handler();
  }

  #restore(): void {
    if (this.#restoring) return; // the running catch-up sees the new loss and goes round again
    this.#restoring = this.#catchUp().finally(() => (this.#restoring = undefined));
  }

  async #catchUp(): Promise<void> {
    try {
      let losses: number;
      do {
        losses = this.#losses;
        for (const handler of this.#restoredHandlers) await handler();
        await this.#announceHeld();
      } while (losses !== this.#losses && this.#connected);
      if (this.#connected) {
        this.#caughtUp = true;
        this.#since = new Date().toISOString();
        this.log.info({ event: 'bus_caught_up' }, 'event bus connected and caught up');
      }
    } catch (err) {
      // Stay not caught up; the next heartbeat heard tries again.
      this.#connected = false;
      this.log.warn({ err, event: 'bus_catch_up_failed' }, 'could not catch up after the bus came back; retrying');
    }
  }
}
