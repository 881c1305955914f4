// The cluster's Redis lock, on a Redis server of the test's own: holders take turns, a holder
// that outlived its expiry cannot release the next holder's lock, and without Redis the
// lock is refused with a typed error rather than granted.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LockUnavailableError, withRedisLock } from '../../registry/redis-lock.js';
import { startRedis, type RedisServer } from '../support/cluster.js';

describe('withRedisLock', { timeout: 30_000 }, () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis.stop());

  it('lets one holder work at a time', async () => {
    const trace: string[] = [];
    const holder = (name: string) =>
      withRedisLock(redis.url, 'lock:turns', async () => {
        trace.push(`${name} in`);
        await new Promise((resolve) => setTimeout(resolve, 50));
        trace.push(`${name} out`);
        return name;
      });
    assert.deepEqual((await Promise.all(['a', 'b', 'c'].map(holder))).sort(), ['a', 'b', 'c']);
    for (let i = 0; i < trace.length; i += 2) assert.equal(trace[i + 1], trace[i]!.replace(' in', ' out'), trace.join(', '));
  });

  it('passes an expired lock on, and its late holder cannot release it', async () => {
    let finishStale!: () => void;
    let staleIn!: () => void;
    const staleHolds = new Promise<void>((resolve) => (staleIn = resolve));
    const stale = withRedisLock(redis.url, 'lock:expiry', () => {
      staleIn();
      return new Promise<void>((resolve) => (finishStale = resolve));
    }, { ttlMs: 200 });
    await staleHolds;
    let finishNext!: () => void;
    let nextIn!: () => void;
    const nextHolds = new Promise<void>((resolve) => (nextIn = resolve));
    const next = withRedisLock(redis.url, 'lock:expiry', () => {
      nextIn();
      return new Promise<void>((resolve) => (finishNext = resolve));
    });
    await nextHolds; // after the stale holder's expiry
    finishStale();
    await stale;
    // The stale holder's release did not free the lock the next one holds.
    await assert.rejects(withRedisLock(redis.url, 'lock:expiry', () => Promise.resolve(), { waitMs: 300 }), LockUnavailableError);
    finishNext();
    await next;
    assert.equal(await withRedisLock(redis.url, 'lock:expiry', () => Promise.resolve('free again')), 'free again');
  });

  it('is refused with LockUnavailableError when Redis does not answer', async () => {
    await redis.kill();
    try {
      await assert.rejects(withRedisLock(redis.url, 'lock:down', () => Promise.resolve(), { waitMs: 300 }), LockUnavailableError);
    } finally {
      await redis.start();
    }
  });
});
