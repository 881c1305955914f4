// The broker's MQTT state shared through Redis, for a cluster: message routing between
// nodes (mqemitter-redis) and sessions, subscriptions, retained messages and QoS 1 queues
// (aedes-persistence-redis). Built here and handed to the broker, which otherwise keeps
// its state in memory.
import { randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import persistenceRedis from 'aedes-persistence-redis';
import { Redis } from 'ioredis';
import MQEmitterRedis from 'mqemitter-redis';
import type { Logger } from 'pino';
import { noAnswerFromRedis } from '../registry/redis-bus.js';
import { quitWithin, redisReady } from '../registry/redis-ready.js';
import { DEFAULT_ROUTING_GATE_OPTIONS, RoutingGate, type ProbeTransport } from './routing-gate.js';

export interface SharedStateLimits {
  /** How long a message queued for an offline device is kept, in seconds. */
  offlineTtlSeconds: number;
  /** How many queued messages a device is sent when it connects; the rest wait for the next. */
  maxSessionDelivery: number;
}

export const DEFAULT_SHARED_STATE_LIMITS: SharedStateLimits = Object.freeze({ offlineTtlSeconds: 24 * 60 * 60, maxSessionDelivery: 1000 });

/** What Aedes takes in place of its in-memory emitter and persistence. */
export interface SharedMqttState {
  readonly mq: unknown;
  readonly persistence: unknown;
  /** Holds device publishes while this node's routing through Redis is behind. */
  readonly routing: RoutingGate;
  /** Ends the Redis connections; after the broker has closed. */
  close(): Promise<void>;
}

/**
 * Commands the MQTT libraries send without waiting for the reply: aedes-persistence-redis 12
 * (LREM of an expired queue entry, LREM and RPUSH of a will) and mqemitter-redis 7 (its QUIT
 * on close). With Redis away, or the connection closing, they reject with nobody listening,
 * which would end the process as an unhandled rejection. On our own connections those
 * commands get a listener that logs the loss (quietly once we are closing); a caller that
 * awaits them still sees the error.
 */
const FIRE_AND_FORGET = { persistence: ['lrem', 'rpush'], sub: ['quit'], pub: ['quit', 'publish'] } as const;

function heardFailures(redis: Redis, commandNames: readonly string[], log: Logger, closing: () => boolean): void {
  const commands = redis as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  for (const command of commandNames) {
    const send = commands[command]!.bind(redis);
    commands[command] = (...args: unknown[]) => {
      const reply = send(...args);
      reply.catch((err: unknown) => {
        const facts = { event: 'redis_command_lost', command, err: err instanceof Error ? err.message : String(err) };
        if (closing()) log.debug(facts, 'a Redis command was cut off by the shutdown');
        else log.warn(facts, 'a Redis command the MQTT state did not wait for failed');
      });
      return reply;
    };
  }
}

/** Connects to Redis for the MQTT state; resolves once every connection is ready, rejects after timeoutMs. */
export async function redisMqttState(url: string, limits: SharedStateLimits, log: Logger, timeoutMs = 30_000): Promise<SharedMqttState> {
  // The connections are ours, not the libraries': they are closed here even when a library's
  // own teardown fails half-way (it would leave a socket that keeps the process alive).
  let closing = false;
  const connect = (role: string) => {
    const redis = new Redis(url, { connectionName: `fleet-mqtt-${role}` });
    redis.on('error', (err: Error) => log.debug({ event: 'redis_error', role, err: err.message }, 'redis connection error'));
    // A subscriber that falls too far behind is disconnected by Redis (client-output-buffer-limit
    // pubsub) and what was buffered for it is gone: QoS 0 messages lost, QoS 1 still queued.
    redis.on('close', () => {
      if (!closing) log.warn({ event: 'redis_disconnected', role }, 'a connection to Redis for MQTT state dropped; reconnecting');
    });
    return redis;
  };
  const connections = [connect('sub'), connect('pub'), connect('persistence')] as const;
  const [subConn, pubConn, conn] = connections;
  await redisReady(connections, timeoutMs, () => noAnswerFromRedis(url, timeoutMs));
  heardFailures(conn, FIRE_AND_FORGET.persistence, log, () => closing);
  heardFailures(subConn, FIRE_AND_FORGET.sub, log, () => closing);
  heardFailures(pubConn, FIRE_AND_FORGET.pub, log, () => closing);
  // concurrency 0, as for the in-memory emitter (broker.ts): no bounded local queue to
  // drain by recursion when a subscriber leaves mid-flood.
  const mq = MQEmitterRedis({ subConn, pubConn, concurrency: 0, matchEmptyLevels: true });
  // mqemitter-redis re-emits connection errors on `state`; unheard, an EventEmitter error
  // would end the process. ioredis reconnects by itself; the event bus reports the outage.
  (mq as unknown as { state: EventEmitter }).state.on('error', (err: Error) => log.debug({ event: 'redis_error', role: 'emitter', err: err.message }, 'redis emitter error'));
  const routing = new RoutingGate(probesThrough(mq as unknown as ProbeEmitter, log), { ...DEFAULT_ROUTING_GATE_OPTIONS, now: () => performance.now() }, {
    holding: (sinceEchoMs) => log.warn({ event: 'routing_backpressure', sinceEchoMs: Math.round(sinceEchoMs) }, 'message routing through Redis is behind: device publishes wait until it catches up'),
    released: (heldMs, released) => log.info({ event: 'routing_caught_up', heldMs: Math.round(heldMs), released }, 'message routing caught up: held publishes go ahead'),
  });
  // Aedes closes the emitter (which quits its two connections) when the broker closes, before
  // close() below: from then on a dropped connection or a lost command is the shutdown's own.
  const emitter = mq as unknown as { close(cb?: () => void): unknown };
  const closeEmitter = emitter.close.bind(mq);
  emitter.close = (cb) => {
    closing = true;
    routing.close();
    return closeEmitter(cb);
  };
  const persistence = persistenceRedis({
    conn,
    maxSessionDelivery: limits.maxSessionDelivery,
    // QoS 0 is never queued; what is queued expires, so a device that never returns does
    // not keep its backlog in Redis for good.
    packetTTL: () => limits.offlineTtlSeconds,
  });
  return {
    mq,
    persistence,
    routing,
    async close() {
      closing = true;
      routing.close();
      await persistence.destroy().catch(() => undefined);
      await Promise.all(connections.map((redis) => quitWithin(redis)));
    },
  };
}

interface ProbeEmitter {
  on(topic: string, listener: (message: { payload: Buffer }, done: () => void) => void, subscribed: () => void): void;
  emit(message: { topic: string; payload: Buffer }, done: (error?: Error) => void): void;
}

/**
 * Probes that travel as messages do: through the emitter (PUBLISH to Redis), back through
 * this node's subscription, behind whatever Redis holds for it. The topic is this node's
 * own; a `$` topic is never matched by a device's `#` or `+` filter, and no device's policy
 * names it.
 */
function probesThrough(mq: ProbeEmitter, log: Logger): ProbeTransport {
  const topic = `$cluster/probe/${randomUUID()}`;
  return {
    send(sentAt) {
      const payload = Buffer.alloc(8);
      payload.writeDoubleBE(sentAt);
      mq.emit({ topic, payload }, (error) => {
        if (error) log.debug({ event: 'routing_probe_lost', err: error.message }, 'a routing probe did not reach Redis');
      });
    },
    onEcho(handler) {
      return new Promise((subscribed) => {
        mq.on(
          topic,
          (message, done) => {
            const payload = Buffer.isBuffer(message.payload) ? message.payload : Buffer.from(message.payload);
            if (payload.length === 8) handler(payload.readDoubleBE(0));
            done();
          },
          subscribed,
        );
      });
    },
  };
}
