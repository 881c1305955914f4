// Waiting for an ioredis connection to be ready before using it: a subscription or a Lua
// script sent earlier would sit in the client's offline queue, and a start-up that "worked"
// would only find out later, one command at a time, that Redis was never there.
import type { Redis } from 'ioredis';

/**
 * Resolves once every connection is ready; after timeoutMs, disconnects them all (nothing
 * keeps retrying for a caller that gave up) and rejects with `unavailable()`. Connection
 * errors meanwhile are not failures: ioredis keeps retrying, and Redis may come up after
 * this node does.
 */
export async function redisReady(connections: readonly Redis[], timeoutMs: number, unavailable: () => Error): Promise<void> {
  const waiting = connections.filter((redis) => redis.status !== 'ready');
  if (waiting.length === 0) return;
  const cleanups: (() => void)[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let left = waiting.length;
      const timer = setTimeout(() => reject(unavailable()), timeoutMs);
      cleanups.push(() => clearTimeout(timer));
      for (const redis of waiting) {
        const ready = () => {
          if (--left === 0) resolve();
        };
        redis.once('ready', ready);
        cleanups.push(() => redis.off('ready', ready));
      }
    });
  } catch (error) {
    for (const redis of connections) redis.disconnect();
    throw error;
  } finally {
    for (const cleanup of cleanups) cleanup();
  }
}

/**
 * QUIT after what is still queued (a closing client's clean-up) rather than dropping it; with
 * Redis away a QUIT would wait for it, so after waitMs the connection is dropped instead.
 */
export async function quitWithin(redis: Redis, waitMs = 1000): Promise<void> {
  await Promise.race([redis.quit(), new Promise((_resolve, reject) => setTimeout(reject, waitMs).unref())]).catch(() => redis.disconnect());
}
