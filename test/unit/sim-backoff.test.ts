import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff, backoffWindow } from '../../firmware-sim/device/backoff.js';

/** Random numbers from a fixed list, in order. */
const sequence = (...values: number[]) => () => {
  const v = values.shift();
  if (v === undefined) throw new Error('the test ran out of random numbers');
  return v;
};
const JUST_BELOW_ONE = 1 - Number.EPSILON;

describe('Backoff (exponential, full jitter)', () => {
  const policy = { baseMs: 100, capMs: 1000 };

  it('doubles the window with each failure until the cap', () => {
    const backoff = new Backoff(policy, () => JUST_BELOW_ONE);
    const waits = Array.from({ length: 7 }, () => Math.round(backoff.next()));
    assert.deepEqual(waits, [100, 200, 400, 800, 1000, 1000, 1000]);
    assert.equal(backoff.failures, 7);
  });

  it('draws each wait uniformly inside the window: the jitter is the injected random number', () => {
    const backoff = new Backoff(policy, sequence(0.5, 0.25, 0, 0.9));
    assert.deepEqual([backoff.next(), backoff.next(), backoff.next(), backoff.next()], [50, 50, 0, 720]);
  });

  it('stays within [0, window) with the real random source, and spreads over the window', () => {
    const backoff = new Backoff({ baseMs: 100, capMs: 100 });
    const waits = Array.from({ length: 2000 }, () => backoff.next());
    assert.ok(waits.every((w) => w >= 0 && w < 100));
    const mean = waits.reduce((a, b) => a + b, 0) / waits.length;
    assert.ok(mean > 40 && mean < 60, `mean ${mean}: full jitter centres on half the window`);
    assert.ok(Math.min(...waits) < 10 && Math.max(...waits) > 90, 'the whole window is used');
  });

  it('starts again from the base window after a success', () => {
    const backoff = new Backoff(policy, () => JUST_BELOW_ONE);
    for (let i = 0; i < 5; i++) backoff.next();
    backoff.reset();
    assert.equal(backoff.failures, 0);
    assert.equal(Math.round(backoff.next()), 100);
  });

  it('never exceeds the cap however many failures came before', () => {
    assert.equal(backoffWindow(policy, 5000), 1000);
    const backoff = new Backoff(policy, () => JUST_BELOW_ONE);
    for (let i = 0; i < 2000; i++) assert.ok(backoff.next() <= 1000);
  });

  it('refuses a policy whose cap is below its base, or a base of zero', () => {
    assert.throws(() => new Backoff({ baseMs: 100, capMs: 50 }), RangeError);
    assert.throws(() => new Backoff({ baseMs: 0, capMs: 50 }), RangeError);
  });
});
