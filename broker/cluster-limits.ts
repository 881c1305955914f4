// Abuse limits that hold for the whole cluster, not per node, kept in the cluster's Redis:
//
// - A claim batch's request rate: one token bucket per batch in Redis, taken by an atomic
//   script on Redis's own clock, so N nodes together grant the batch its rate, not N times it.
// - CONNECT bans: throttling stays per node (a Redis round trip on every CONNECT would tax
//   every device for the sake of a few), but a ban one node decides is told to every other
//   node over pub/sub, so a client id hammering several nodes is banned on all of them; and a
//   ban lifted through the API is lifted everywhere.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { noAnswerFromRedis } from '../registry/redis-bus.js';
import { quitWithin, redisReady } from '../registry/redis-ready.js';
import type { SharedBan } from './abuse.js';

/** The cluster-wide limits the broker uses in a cluster (in-process ones otherwise). */
export interface SharedLimits {
  /** Takes one request token of a claim batch's bucket; false when it is empty. Rejects when Redis is away. */
  takeClaimToken(batchId: string, rate: { perSecond: number; burst: number }): Promise<boolean>;
  /** Tells the other nodes of a ban this node decided. */
  announceBan(ban: SharedBan): void;
  /** Tells the other nodes that a client id's bans were lifted. */
  announceUnban(clientId: string): void;
  /** Hears the bans and lifts other nodes announce. */
  onBans(listener: { banned(ban: SharedBan): void; unbanned(clientId: string): void }): void;
  close(): Promise<void>;
}

// KEYS[1]: the bucket; ARGV: tokens per second, burst. Refills by the time since the last
// take (Redis's clock, the one every node shares), takes a token if there is one, and lets an
// idle bucket expire once it would be full again anyway.
const TAKE_TOKEN = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'last')
local tokens = tonumber(b[1]) or burst
local last = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate / 1000)
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'last', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return taken
`;

type BanMessage = { origin: string; kind: 'ban'; ban: SharedBan } | { origin: string; kind: 'unban'; clientId: string };

interface TokenCommands {
  fleetTakeToken(key: string, perSecond: number, burst: number): Promise<number>;
}

/** Connects to Redis for the shared limits; resolves once both connections are ready and bans are heard. */
export async function redisSharedLimits(url: string, prefix: string, log: Logger, timeoutMs = 30_000): Promise<SharedLimits> {
  const origin = randomUUID();
  const channel = `${prefix}:bans`;
  // Commands fail at once while Redis is away: a claim request is answered, not parked.
  const commands = new Redis(url, { connectionName: 'fleet-limits', enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  const sub = new Redis(url, { connectionName: 'fleet-limits-sub' });
  for (const [role, redis] of [
    ['limits', commands],
    ['limits-sub', sub],
  ] as const) {
    redis.on('error', (err: Error) => log.debug({ event: 'redis_error', role, err: err.message }, 'redis connection error'));
  }
  await redisReady([commands, sub], timeoutMs, () => noAnswerFromRedis(url, timeoutMs));
  commands.defineCommand('fleetTakeToken', { numberOfKeys: 1, lua: TAKE_TOKEN });
  const listeners: Parameters<SharedLimits['onBans']>[0][] = [];
  // ioredis subscribes again by itself after a reconnect.
  await sub.subscribe(channel);
  sub.on('message', (_channel: string, text: string) => {
    let message: BanMessage;
    try {
      message = JSON.parse(text) as BanMessage;
    } catch {
      return;
    }
    if (message.origin === origin) return;
    for (const listener of listeners) {
      if (message.kind === 'ban') listener.banned(message.ban);
      else listener.unbanned(message.clientId);
    }
  });
  const announce = (message: BanMessage) =>
    void commands.publish(channel, JSON.stringify(message)).catch((err: unknown) => log.warn({ err, event: 'ban_not_shared', kind: message.kind }, 'a ban could not be told to the other nodes'));
  return {
    async takeClaimToken(batchId, rate) {
      return (await (commands as unknown as TokenCommands).fleetTakeToken(`${prefix}:claim-bucket:${batchId}`, rate.perSecond, rate.burst)) === 1;
    },
    announceBan: (ban) => announce({ origin, kind: 'ban', ban }),
    announceUnban: (clientId) => announce({ origin, kind: 'unban', clientId }),
    onBans: (listener) => void listeners.push(listener),
    async close() {
      await Promise.all([commands, sub].map((redis) => quitWithin(redis)));
    },
  };
}
