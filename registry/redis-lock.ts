// A lock held in the cluster's Redis, for work that one node at a time must do on what the
// nodes share (the server certificate in a shared data directory, at start-up and after a
// CA rotation). SET NX with an expiry, so a holder that dies lets the others go on; released
// only by its holder (a compare-and-delete script), so a holder that outlived its expiry
// cannot free a lock someone else took since.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { redisReady } from './redis-ready.js';

export class LockUnavailableError extends Error {
  override readonly name = 'LockUnavailableError';
}

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

export interface LockOptions {
  /** How long the lock holds if its holder never releases it. */
  ttlMs: number;
  /** How long to wait for Redis and for the lock before giving up. */
  waitMs: number;
  /** How often a waiter tries again. */
  pollMs: number;
}

export const DEFAULT_LOCK_OPTIONS: LockOptions = Object.freeze({ ttlMs: 30_000, waitMs: 60_000, pollMs: 50 });

/** Runs `work` while holding the lock `key`; rejects with LockUnavailableError if it cannot be had within waitMs. */
export async function withRedisLock<T>(url: string, key: string, work: () => Promise<T>, options: Partial<LockOptions> = {}): Promise<T> {
  const { ttlMs, waitMs, pollMs } = { ...DEFAULT_LOCK_OPTIONS, ...options };
  // Its own short-lived connection: the lock is rare (start-up, rotation) and must not queue
  // behind, or be confused with, the bus's traffic.
  const redis = new Redis(url, { connectionName: 'fleet-lock', enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined); // reported as LockUnavailableError below
  const token = randomUUID();
  const unavailable = () => new LockUnavailableError(`lock ${key} not acquired within ${waitMs} ms`);
  try {
    const deadline = Date.now() + waitMs;
    await redisReady([redis], waitMs, unavailable);
    while ((await redis.set(key, token, 'PX', ttlMs, 'NX')) !== 'OK') {
      if (Date.now() > deadline) throw unavailable();
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
    try {
      return await work();
    } finally {
      await redis.eval(RELEASE, 1, key, token).catch(() => undefined); // it expires anyway
    }
  } finally {
    redis.disconnect();
  }
}
