// Cluster-wide abuse limits on a Redis server of the test's own: two nodes draw a claim
// batch's requests from one bucket, a ban one node decides holds on the other and is lifted
// on both, and a bucket that cannot be reached is an error, not a free pass.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { AbuseControl, type SharedBan } from '../../broker/abuse.js';
import { redisSharedLimits, type SharedLimits } from '../../broker/cluster-limits.js';
import { startRedis, type RedisServer } from '../support/cluster.js';
import { eventually } from '../support/wait.js';

const limits = {
  perClientId: { ratePerSecond: 1, burst: 1 },
  perAddress: { ratePerSecond: 1000, burst: 1000 },
  ban: { afterThrottled: 2, windowMs: 60_000, durationMs: 60_000 },
};

describe('shared limits', { timeout: 30_000 }, () => {
  let redis: RedisServer;
  let a: SharedLimits;
  let b: SharedLimits;
  const log = pino({ level: 'silent' });

  before(async () => {
    redis = await startRedis();
    [a, b] = await Promise.all([redisSharedLimits(redis.url, 'test', log), redisSharedLimits(redis.url, 'test', log)]);
  });
  after(async () => {
    await Promise.all([a.close(), b.close()]);
    await redis.stop();
  });

  it('gives a claim batch its burst once across nodes, not once per node', async () => {
    // A rate so slow that no token comes back during the test.
    const rate = { perSecond: 0.001, burst: 3 };
    const taken = [];
    for (const node of [a, b, a, b, a]) taken.push(await node.takeClaimToken('batch-1', rate));
    assert.deepEqual(taken, [true, true, true, false, false]);
    assert.equal(await b.takeClaimToken('batch-2', rate), true, 'each batch has a bucket of its own');
  });

  it('bans a client id on every node when one node bans it, and lifts the ban everywhere', async () => {
    let now = 0;
    const [here, there] = [new AbuseControl(limits, () => now), new AbuseControl(limits, () => now)];
    here.share(a);
    for (const [control, shared] of [
      [here, a],
      [there, b],
    ] as const) {
      shared.onBans({ banned: (ban: SharedBan) => control.adopt(ban), unbanned: (clientId) => control.lift(clientId) });
    }
    there.share(b);
    const outcomes = [1, 2, 3].map(() => here.checkConnect('dev-1', '10.0.0.1', 'f1'));
    assert.deepEqual(
      outcomes.map((o) => (o.ok ? 'ok' : o.reason)),
      ['ok', 'throttled', 'banned'],
    );
    await eventually(() => there.bans().length === 1, 5000, 'the ban heard on the other node');
    assert.deepEqual(there.bans().map((ban) => [ban.clientId, ban.identity]), [['dev-1', 'f1']]);
    now += 1000;
    const elsewhere = there.checkConnect('dev-1', '10.0.0.2', 'f1');
    assert.equal(elsewhere.ok ? 'ok' : elsewhere.reason, 'banned');
    assert.equal(there.checkConnect('dev-2', '10.0.0.2', 'f2').ok, true, 'other devices unaffected');

    assert.equal(there.unban('dev-1'), 1);
    await eventually(() => here.bans().length === 0, 5000, 'the lift heard on the banning node');
  });

  it('fails a token take while Redis is away instead of granting it', async () => {
    await redis.kill();
    try {
      await assert.rejects(a.takeClaimToken('batch-3', { perSecond: 1, burst: 1 }));
    } finally {
      await redis.start();
    }
  });
});
