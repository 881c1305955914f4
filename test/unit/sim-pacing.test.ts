// The simulator's pace for claim requests, on a stepped clock: the burst goes at once, the
// rest evenly spaced in the order asked; and a fleet keeping the pace a claim batch is
// created with is never over that batch's limit as the broker counts it (its own token
// bucket), even when requests reach the broker unevenly late.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TokenBucket } from '../../broker/limits.js';
import { claimLimits, Pacer } from '../../firmware-sim/pacer.js';
import { ManualTimers } from '../support/manual-timers.js';

/** A deterministic stand-in for Math.random. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe('Pacer', () => {
  it('lets the burst through at once, then spaces the rest at the rate, in the order asked', () => {
    const timers = new ManualTimers();
    const pacer = new Pacer({ perSecond: 10, burst: 3 }, timers);
    const waits = Array.from({ length: 6 }, () => pacer.reserve());
    assert.deepEqual(waits.map((w) => Math.round(w)), [0, 0, 0, 100, 200, 300]);
  });

  it('refills with time, never past its burst', () => {
    const timers = new ManualTimers();
    const pacer = new Pacer({ perSecond: 10, burst: 2 }, timers);
    pacer.reserve();
    pacer.reserve();
    assert.equal(Math.round(pacer.reserve()), 100, 'empty: the next token is 100 ms away');
    timers.advance(60_000);
    assert.deepEqual([pacer.reserve(), pacer.reserve(), Math.round(pacer.reserve())], [0, 0, 100], 'a minute idle refills two tokens, not six hundred');
  });

  it('take() waits on the timers for the turn it reserved', async () => {
    const timers = new ManualTimers();
    const pacer = new Pacer({ perSecond: 4, burst: 1 }, timers);
    const done: number[] = [];
    for (let i = 0; i < 3; i++) void pacer.take(timers).then((waited) => done.push(waited));
    await timers.settle();
    assert.deepEqual(done, [0]);
    timers.advance(250);
    await timers.settle();
    assert.deepEqual(done, [0, 250]);
    timers.advance(250);
    await timers.settle();
    assert.deepEqual(done, [0, 250, 500]);
  });

  it('refuses a pace that could never let a request through', () => {
    const timers = new ManualTimers();
    assert.throws(() => new Pacer({ perSecond: 0, burst: 5 }, timers), RangeError);
    assert.throws(() => new Pacer({ perSecond: 5, burst: 0 }, timers), RangeError);
  });
});

describe('claim batch limits and the fleet’s pace', () => {
  it('sets the batch to the rate asked, with a burst of a second’s requests; the fleet paces at the same rate with half of it', () => {
    assert.deepEqual(claimLimits(400), { batch: { perSecond: 400, burst: 400 }, pace: { perSecond: 400, burst: 200 } });
    assert.deepEqual(claimLimits(0.5), { batch: { perSecond: 0.5, burst: 2 }, pace: { perSecond: 0.5, burst: 1 } });
  });

  /** Sends `count` requests as the pace allows (or all at once), each reaching the broker up to `spreadMs` late; returns how many the broker's bucket refuses. */
  function refusedByBroker(requestsPerSecond: number, count: number, spreadMs: number, paced: boolean, seed: number): number {
    const { batch, pace } = claimLimits(requestsPerSecond);
    const timers = new ManualTimers(0);
    const pacer = new Pacer(pace, timers);
    const random = seeded(seed);
    // Devices ask in bunches, as a pool of them finishing their TLS handshakes would.
    const arrivals: number[] = [];
    for (let i = 0; i < count; i++) {
      if (i % 25 === 0) timers.advance(random() * 50);
      const sentAt = timers.now() + (paced ? pacer.reserve() : 0);
      arrivals.push(sentAt + random() * spreadMs);
    }
    arrivals.sort((a, b) => a - b);
    const broker = new TokenBucket({ ratePerSecond: batch.perSecond, burst: batch.burst }, 0);
    return arrivals.filter((at) => !broker.tryTake(at)).length;
  }

  it('keeps a paced fleet under the batch’s limit as the broker counts it, with requests arriving up to 450 ms apart from when they left', () => {
    for (const [rate, seed] of [[10, 1], [400, 2], [2000, 3]] as const) {
      assert.equal(refusedByBroker(rate, rate * 6, 450, true, seed), 0, `${rate}/s`);
    }
  });

  it('would be refused without the pace (the check above can fail)', () => {
    assert.ok(refusedByBroker(400, 2400, 450, false, 4) > 2400 / 4);
  });
});
